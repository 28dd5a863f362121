"""CPU set strings both ways."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nova_slices.cpuset import (
    MAX_CPU_ID,
    CpusetTooLarge,
    format_cpuset,
    parse_cpuset,
)
from tests.fixtures.scheduling import EXCLUSIVE

# wall-clock bounds: see tests/fixtures/scheduling.py
pytestmark = EXCLUSIVE


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


# -- bounds: checked before any range is expanded -------------------------

TOO_LARGE = [
    # (text, parse_cpuset keyword arguments, words in the message)
    ("0-99999999999", {}, "above the highest allowed id 65535"),
    ("^0-99999999999", {}, "'^0-99999999999'"),
    ("9" * 100_000, {}, "above the highest allowed id 65535"),
    ("0-200", {"max_id": 127}, "'0-200' names id 200"),
    ("0-65535", {"max_size": 64}, "names 65536 ids, more than the 64"),
]


@pytest.mark.parametrize("text,kwargs,words", TOO_LARGE)
def test_too_large_is_refused_unexpanded(text, kwargs, words):
    start = time.monotonic()
    with pytest.raises(CpusetTooLarge) as info:
        parse_cpuset(text, **kwargs)
    assert time.monotonic() - start < 1.0
    assert words in str(info.value)
    # a long value is cut short in the message
    assert len(str(info.value)) < 200


def test_repeated_ranges_expand_once():
    start = time.monotonic()
    ids = parse_cpuset(",".join(["0-65535"] * 20_000) + ",^5")
    assert time.monotonic() - start < 5.0
    assert len(ids) == MAX_CPU_ID and 5 not in ids


def test_the_largest_id_is_accepted():
    assert parse_cpuset(f"{MAX_CPU_ID}") == {MAX_CPU_ID}
    assert parse_cpuset("0127", max_id=127) == {127}


def test_non_ascii_digits_are_not_ids():
    with pytest.raises(ValueError) as info:
        parse_cpuset("²")
    assert "not a CPU id" in str(info.value)
