"""CPU set strings both ways."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nova_slices.cpuset import format_cpuset, parse_cpuset


@pytest.mark.parametrize(
    "text,ids",
    [
        ("0", {0}),
        ("0-3", {0, 1, 2, 3}),
        ("0-3,^2,8-11", {0, 1, 3, 8, 9, 10, 11}),
        (" 4 - 6 , 9 ", {4, 5, 6, 9}),
        ("0-7,^0-3", {4, 5, 6, 7}),
        ("3,1,2", {1, 2, 3}),
    ],
)
def test_parse(text, ids):
    assert parse_cpuset(text) == ids


@pytest.mark.parametrize(
    "text,words",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a", "not a CPU id"),
        ("1-", "not a CPU id"),
        ("3-1", "backwards"),
        ("0-3,^0-3", "empty after exclusions"),
        ("1,,2", "not a CPU id"),
        ("-1", "not a CPU id"),
    ],
)
def test_parse_errors(text, words):
    with pytest.raises(ValueError) as info:
        parse_cpuset(text)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "ids,text",
    [
        ({0}, "0"),
        ({0, 1, 2, 5}, "0-2,5"),
        ({1, 3, 5}, "1,3,5"),
        ({8, 9, 10, 11, 0, 1}, "0-1,8-11"),
    ],
)
def test_format(ids, text):
    assert format_cpuset(ids) == text


@given(st.sets(st.integers(0, 600), min_size=1))
def test_round_trip(ids):
    assert parse_cpuset(format_cpuset(ids)) == ids
