"""pytest's view of the test tree."""

import os

import pytest

# Nova's functional harness is testtools-based: pytest cannot run those
# tests (each errors with "has no attribute 'test_...'"); stestr does
# (see .stestr.conf and README's test command).
collect_ignore = ["nova_functional"]


def pytest_runtest_setup(item):
    """Fail an ``exclusive`` test on an xdist worker: next to another
    worker's burst of processes its wall-clock bound could fail at random
    (tests/fixtures/scheduling.py).  Such tests run alone: ``-m exclusive``."""
    if os.environ.get("PYTEST_XDIST_WORKER") and item.get_closest_marker(
        "exclusive"
    ):
        pytest.fail(
            "an exclusive test under pytest-xdist: run "
            "`pytest -n 2 -m 'not exclusive' tests`, then "
            "`pytest -m exclusive tests` (tests/fixtures/scheduling.py)",
            pytrace=False,
        )
