"""Table tests of the fitter's over-subscription limits (Nova's
``NUMATopologyLimits``), one rule at a time on a small host.

As Nova's ``_numa_fit_instance_cell``: for a guest of a shared, mixed or
unset CPU policy, and only when limits are given, a host cell is refused
when its shared vCPUs in use plus the guest cell's shared vCPUs exceed
its shared CPUs x the CPU ratio, or its memory in use (every guest's,
hugepages too) plus the guest cell's memory exceeds its memory x the RAM
ratio.  Dedicated guests are never checked.  Without limits nothing
changes.
"""

import pytest

from nova_slices.fit.model import CellUsage, Limits
from nova_slices.host.restrictions import HostRestrictions
from tests.fitcheck import make_cell, make_host, smt_groups
from tests.unit.test_fit_tables import placed, reason, rejected, req, usage

#: one cell: CPUs 0-3 shared, 4-7 dedicated; 4096 MB of 4 KiB pages and
#: 4096 MB of 2 MiB pages (8192 MB)
HOST = make_host(make_cell(0, smt_groups(0, 8, 1), huge=((2048, 2048),)))
SETS = HostRestrictions(frozenset(range(4, 8)), frozenset(range(4)))

SHARED = req(2, 1024, hw_numa_nodes=1)
HUGE = req(2, 1024, hw_numa_nodes=1, hw_mem_page_size="2048")
MIXED = req(4, 1024, hw_cpu_policy="mixed", hw_cpu_dedicated_mask="0-1")
DEDICATED = req(2, 1024, hw_cpu_policy="dedicated")

ONE = Limits(1.0, 1.0)
CPU = "numa.cpu-oversubscribed"
MEM = "numa.memory-oversubscribed"

# (name, guest, cell 0 usage, limits, refused with: code or None)
CASES = [
    # -- shared CPUs: 4 shared CPUs x ratio ------------------------------
    ("shared: 3 + 2 > 4", SHARED, CellUsage(cpu_usage=3), ONE, CPU),
    ("shared: 2 + 2 = 4 fits", SHARED, CellUsage(cpu_usage=2), ONE, None),
    ("shared: ratio 2", SHARED, CellUsage(cpu_usage=6), Limits(2, 1), None),
    ("shared: 7 + 2 > 8", SHARED, CellUsage(cpu_usage=7), Limits(2, 1), CPU),
    ("shared: no limits", SHARED, CellUsage(cpu_usage=4), None, None),
    ("hugepages: 4 + 2 > 4", HUGE, CellUsage(cpu_usage=4), ONE, CPU),
    ("mixed: its 2 shared vCPUs", MIXED, CellUsage(cpu_usage=2), ONE, None),
    ("mixed: 3 + 2 > 4", MIXED, CellUsage(cpu_usage=3), ONE, CPU),
    ("mixed: no limits", MIXED, CellUsage(cpu_usage=4), None, None),
    ("dedicated: never", DEDICATED, CellUsage(cpu_usage=4), ONE, None),
    # -- memory: 8192 MB x ratio -----------------------------------------
    ("memory: 7680 + 1024", SHARED, CellUsage(memory_mb=7680), ONE, MEM),
    ("memory: 7168 + 1024", SHARED, CellUsage(memory_mb=7168), ONE, None),
    (
        "memory: ratio 1.5",
        SHARED,
        CellUsage(memory_mb=7680),
        Limits(1, 1.5),
        None,
    ),
    ("memory: no limits", SHARED, CellUsage(memory_mb=8192), None, None),
    # free 2 MiB pages do not help: Nova counts memory_usage
    ("hugepages: memory", HUGE, CellUsage(memory_mb=7680), ONE, MEM),
    ("mixed: memory", MIXED, CellUsage(memory_mb=7680), ONE, MEM),
    ("dedicated: memory", DEDICATED, CellUsage(memory_mb=7680), ONE, None),
]


@pytest.mark.parametrize(
    "guest, cell_usage, limits, code",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_limits(guest, cell_usage, limits, code):
    used = usage(c0=cell_usage)
    if code is None:
        placed(HOST, guest, used, SETS, limits=limits)
    else:
        got = rejected(HOST, guest, used, SETS, limits=limits)
        assert reason(got, code, host_cell=0, guest_cell=0)


def test_cpu_reason_carries_asked_and_room():
    got = rejected(
        HOST, MIXED, usage(c0=CellUsage(cpu_usage=3)), SETS, limits=ONE
    )
    r = reason(got, CPU, host_cell=0)
    assert (r.requested, r.available) == (2, 1)


def test_memory_reason_carries_asked_and_room():
    got = rejected(
        HOST,
        SHARED,
        usage(c0=CellUsage(memory_mb=7680)),
        SETS,
        limits=Limits(1, 1.0),
    )
    r = reason(got, MEM, host_cell=0)
    assert (r.requested, r.available) == (1024, 8192 - 7680)


def test_both_limits_reported_together():
    got = rejected(
        HOST,
        SHARED,
        usage(c0=CellUsage(cpu_usage=4, memory_mb=8192)),
        SETS,
        limits=ONE,
    )
    assert {r.code for r in got.reasons} == {CPU, MEM}


def test_a_full_cell_sends_the_guest_to_the_other():
    host = make_host(
        make_cell(0, smt_groups(0, 4, 1)), make_cell(1, smt_groups(4, 4, 1))
    )
    used = usage(c0=CellUsage(cpu_usage=4))
    got = placed(host, SHARED, used, limits=ONE)
    assert [c.host_cell for c in got.cells] == [1]
    # without limits Nova's spread still prefers the emptier cell 1; pin
    # the guest to cell 0 to see the limit refuse it there
    pinned = req(2, 1024, hw_numa_nodes=1, hw_numa_node_0=0)
    placed(host, pinned, used)
    got = rejected(host, pinned, used, limits=ONE)
    assert reason(got, CPU, host_cell=0)
