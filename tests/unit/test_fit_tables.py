"""Table tests of the NUMA fitter: one rule at a time, on small hosts.

Hosts are built by hand (tests/fitcheck.py's ``make_cell``) or read from
the shipped gpu8-2s bundle.  Tests assert on reason codes and on the
numbers a reason carries, never on message text; every placement any test
obtains goes through the independent checker.
"""

import dataclasses
import itertools
import json

import pytest

from nova_slices.errors import NovaSlicesError, RequestError
from nova_slices.fit.claims import (
    ClaimError,
    claim,
    rebuild,
    release,
    usage_from_dict,
)
from nova_slices.fit.fitter import fit
from nova_slices.fit.model import CellUsage, Placement, Rejection, Usage
from nova_slices.fit.pci import parse_aliases
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import (
    TYPE_PF,
    TYPE_VF,
    HostDevices,
    PciDevice,
    parse_node_devices,
    split_node_file,
)
from nova_slices.host.restrictions import HostRestrictions
from nova_slices.request.build import build_request
from tests.fitcheck import (
    check_placement,
    core_of,
    make_cell,
    make_host,
    smt_groups,
)
from tests.unit.test_host_bundle import CAPS, NODE

G1 = 1048576


def req(vcpus, memory_mb, **specs):
    """build_request with extra specs given as hw_numa_nodes="2" etc."""
    return build_request(
        vcpus,
        memory_mb,
        {_key(k): str(v) for k, v in specs.items()},
    )


def _key(name):
    # hw_numa_node_0 -> hw:numa_node.0; pci_alias -> pci_passthrough:alias
    if name == "pci_alias":
        return "pci_passthrough:alias"
    head, _, rest = name.partition("_")
    key = f"{head}:{rest}"
    parts = key.rsplit("_", 1)
    if parts[-1].isdigit():
        key = f"{parts[0]}.{parts[1]}"
    return key


def placed(topology, request, usage=None, restrictions=None, **kw):
    """The fitter's Placement, checked by the independent checker."""
    got = fit(topology, request, usage, restrictions, **kw)
    assert isinstance(got, Placement), got
    assert (
        check_placement(
            topology,
            request,
            got,
            usage or Usage(),
            restrictions,
            kw.get("devices"),
            kw.get("aliases"),
        )
        == []
    )
    return got


def rejected(topology, request, usage=None, restrictions=None, **kw):
    """The fitter's Rejection; it must carry reasons."""
    got = fit(topology, request, usage, restrictions, **kw)
    if isinstance(got, Placement):
        # a wrong fit is still checked, so a failure says what is wrong
        problems = check_placement(
            topology,
            request,
            got,
            usage or Usage(),
            restrictions,
            kw.get("devices"),
            kw.get("aliases"),
        )
        pytest.fail(f"expected no fit, got {got} (checker: {problems})")
    assert isinstance(got, Rejection)
    assert got.reasons, "a rejection must say why"
    return got


def codes(rejection):
    return {r.code for r in rejection.reasons}


def reason(rejection, code, **where):
    """The one reason with ``code`` (and host_cell/guest_cell given)."""
    found = [
        r
        for r in rejection.reasons
        if r.code == code and all(getattr(r, k) == v for k, v in where.items())
    ]
    assert len(found) == 1, rejection.reasons
    return found[0]


def hosts_of(placement):
    return [c.host_cell for c in placement.cells]


def pinned_cpus(placement):
    return {p for c in placement.cells for _, p in c.cpu_pinning}


def usage(**cells):
    """usage(c0=CellUsage(...)) -> Usage."""
    return Usage(tuple(sorted((int(k[1:]), v) for k, v in cells.items())))


def flat_host(cells=2, cpus=4, socket_of=lambda i: 0, **kw):
    """``cells`` cells of ``cpus`` non-SMT CPUs each."""
    return make_host(
        *(
            make_cell(i, smt_groups(i * cpus, cpus, 1), socket_of(i), **kw)
            for i in range(cells)
        )
    )


SMT = make_host(make_cell(0, smt_groups(0, 4, 2)))  # (0,1) (2,3) (4,5) (6,7)


# -- CPU policies and CPU sets ------------------------------------------------


def test_shared_guest_floats_over_every_cpu_without_cpu_sets():
    host = flat_host(1, 4)
    got = placed(host, req(2, 1024, hw_numa_nodes=1))
    (cell,) = got.cells
    assert cell.cpu_pinning == () and cell.shared_vcpus == 2
    assert cell.shared_cpus == frozenset(range(4))


def test_shared_guest_never_overcommits_against_itself():
    got = rejected(flat_host(1, 4), req(6, 1024, hw_numa_nodes=1))
    r = reason(got, "numa.not-enough-shared-cpus", host_cell=0)
    assert (r.guest_cell, r.requested, r.available) == (0, 6, 4)


SETS = HostRestrictions(frozenset(range(4, 8)), frozenset(range(4)))


def test_dedicated_guest_pins_only_cpu_dedicated_set():
    got = placed(
        flat_host(1, 8), req(4, 1024, hw_cpu_policy="dedicated"), None, SETS
    )
    assert pinned_cpus(got) == set(range(4, 8))


def test_dedicated_guest_larger_than_cpu_dedicated_set():
    got = rejected(
        flat_host(1, 8), req(5, 1024, hw_cpu_policy="dedicated"), None, SETS
    )
    r = reason(got, "numa.not-enough-pcpus", host_cell=0)
    assert (r.requested, r.available) == (5, 4)


def test_shared_guest_floats_only_over_cpu_shared_set():
    got = placed(flat_host(1, 8), req(4, 1024, hw_numa_nodes=1), None, SETS)
    assert got.cells[0].shared_cpus == frozenset(range(4))
    got = rejected(flat_host(1, 8), req(5, 1024, hw_numa_nodes=1), None, SETS)
    r = reason(got, "numa.not-enough-shared-cpus", host_cell=0)
    assert (r.requested, r.available) == (5, 4)


def test_mixed_guest_pins_the_mask_and_floats_the_rest():
    request = req(4, 1024, hw_cpu_policy="mixed", hw_cpu_dedicated_mask="0-1")
    got = placed(flat_host(1, 8), request, None, SETS)
    (cell,) = got.cells
    assert {v for v, _ in cell.cpu_pinning} == {0, 1}
    assert pinned_cpus(got) <= set(range(4, 8))
    assert cell.shared_vcpus == 2 and cell.shared_cpus <= set(range(4))


@pytest.mark.parametrize(
    "restrictions, request_, code",
    [
        # only cpu_dedicated_set: no CPU for floating vCPUs
        (
            HostRestrictions(frozenset(range(4, 8)), None),
            req(1, 512, hw_numa_nodes=1),
            "numa.not-enough-shared-cpus",
        ),
        # only cpu_shared_set: no CPU to pin
        (
            HostRestrictions(None, frozenset(range(4))),
            req(1, 512, hw_cpu_policy="dedicated"),
            "numa.not-enough-pcpus",
        ),
    ],
)
def test_one_cpu_set_alone_leaves_the_other_pool_empty(
    restrictions, request_, code
):
    got = rejected(flat_host(1, 8), request_, None, restrictions)
    assert reason(got, code, host_cell=0).available == 0


def test_pinned_cpus_in_usage_are_never_pinned_again():
    host = flat_host(1, 4)
    now = usage(c0=CellUsage(frozenset({0, 2})))
    got = placed(host, req(2, 512, hw_cpu_policy="dedicated"), now)
    assert pinned_cpus(got) == {1, 3}
    got = rejected(host, req(3, 512, hw_cpu_policy="dedicated"), now)
    r = reason(got, "numa.not-enough-pcpus", host_cell=0)
    assert (r.requested, r.available) == (3, 2)


# -- thread policies ----------------------------------------------------------


@pytest.mark.parametrize("policy", [None, "prefer"])
def test_prefer_packs_siblings(policy):
    specs = {"hw_cpu_policy": "dedicated"}
    if policy:
        specs["hw_cpu_thread_policy"] = policy
    got = placed(SMT, req(2, 512, **specs))
    a, b = sorted(pinned_cpus(got))
    assert core_of(SMT.cells[0], a) == {a, b}


def test_prefer_settles_for_lone_threads():
    now = usage(c0=CellUsage(frozenset({1, 3, 5, 7})))
    request = req(
        3, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="prefer"
    )
    assert pinned_cpus(placed(SMT, request, now)) <= {0, 2, 4, 6}


def test_isolate_takes_whole_cores_and_reserves_siblings():
    request = req(
        2, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="isolate"
    )
    got = placed(SMT, request)
    (cell,) = got.cells
    pins = pinned_cpus(got)
    assert len({core_of(SMT.cells[0], p) for p in pins}) == 2
    assert cell.reserved_cpus == {p ^ 1 for p in pins}


def test_isolate_needs_whole_free_cores():
    now = usage(c0=CellUsage(frozenset({1, 3, 5})))
    request = req(
        2, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="isolate"
    )
    got = rejected(SMT, request, now)
    r = reason(got, "numa.not-enough-free-cores", host_cell=0)
    assert (r.requested, r.available) == (2, 1)


def test_isolate_reserves_nothing_without_smt():
    request = req(
        3, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="isolate"
    )
    got = placed(flat_host(1, 4), request)
    assert got.cells[0].reserved_cpus == frozenset()


def test_isolated_siblings_are_not_given_to_the_next_guest():
    request = req(
        2, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="isolate"
    )
    first = placed(SMT, request)
    now = claim(SMT, Usage(), first)
    second = placed(SMT, request, now)
    assert not (pinned_cpus(second) & first.cells[0].reserved_cpus)
    rejected(SMT, request, claim(SMT, now, second))


def test_require_without_smt():
    request = req(
        2, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="require"
    )
    got = rejected(flat_host(1, 4), request)
    reason(got, "numa.thread-policy-require-no-smt", host_cell=0)


def test_require_packs_sibling_threads():
    request = req(
        3, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="require"
    )
    pins = pinned_cpus(placed(SMT, request))
    assert {core_of(SMT.cells[0], p) for p in pins} == {
        frozenset({0, 1}),
        frozenset({2, 3}),
    }


def test_require_refuses_lone_free_threads():
    now = usage(c0=CellUsage(frozenset({1, 3, 5, 7})))
    request = req(
        2, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="require"
    )
    got = rejected(SMT, request, now)
    r = reason(got, "numa.not-enough-free-cores", host_cell=0)
    # counted in threads: 2 wanted, none on a whole free SMT core
    assert (r.requested, r.available) == (2, 0)


def test_require_on_cores_of_different_thread_counts():
    """Cores of 2 and 4 threads: a 4-vCPU ``require`` guest takes the
    4-thread core (this once crashed the fitter)."""
    host = make_host(make_cell(0, [(0, 1), (2, 3, 4, 5)]))
    request = req(
        4, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="require"
    )
    got = placed(host, request)
    assert pinned_cpus(got) == {2, 3, 4, 5}


def test_require_uses_free_siblings_of_partly_used_cores():
    """SMT4 cores with one thread taken each: 3 free siblings a core are
    enough for a 2-vCPU ``require`` guest (Nova's packing takes ``t``
    threads from every core with ``t`` free); whole free cores used to be
    demanded."""
    host = make_host(make_cell(0, [(0, 1, 2, 3), (4, 5, 6, 7)]))
    now = usage(c0=CellUsage(frozenset({0, 4})))
    request = req(
        2, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="require"
    )
    assert pinned_cpus(placed(host, request, now)) == {1, 2}
    # two free siblings on one core still do
    now = usage(c0=CellUsage(frozenset({0, 1, 4, 5, 6})))
    assert pinned_cpus(placed(host, request, now)) == {2, 3}
    # lone free threads do not
    now = usage(c0=CellUsage(frozenset({0, 1, 2, 4, 5, 6})))
    got = rejected(host, request, now)
    r = reason(got, "numa.not-enough-free-cores", host_cell=0)
    assert (r.requested, r.available) == (2, 0)


# -- emulator threads ---------------------------------------------------------


def test_emulator_isolate_takes_one_more_pcpu():
    request = req(
        2, 512, hw_cpu_policy="dedicated", hw_emulator_threads_policy="isolate"
    )
    got = placed(flat_host(1, 4), request)
    (cell,) = got.cells
    assert len(cell.emulator_cpus) == 1
    assert not cell.emulator_cpus & pinned_cpus(got)


def test_emulator_isolate_counts_in_the_cells_pcpus():
    request = req(
        2, 512, hw_cpu_policy="dedicated", hw_emulator_threads_policy="isolate"
    )
    now = usage(c0=CellUsage(frozenset({0, 1})))
    got = rejected(flat_host(1, 4), request, now)
    r = reason(got, "numa.not-enough-pcpus", host_cell=0)
    assert (r.requested, r.available) == (3, 2)


@pytest.mark.parametrize("policy", ["isolate", "require"])
def test_emulator_isolate_takes_any_other_free_dedicated_cpu(policy):
    """As Nova's packing: the thread policy places the pinned vCPUs, the
    emulator thread takes another free dedicated CPU -- a lone thread of
    a used core is enough (whole cores used to be demanded for it), and
    for ``isolate`` it stays off the pinned vCPUs' cores; its own
    sibling is not reserved."""
    now = usage(c0=CellUsage(frozenset({5, 7})))  # cores (4,5), (6,7) used
    request = req(
        2 if policy == "isolate" else 4,
        512,
        hw_cpu_policy="dedicated",
        hw_cpu_thread_policy=policy,
        hw_emulator_threads_policy="isolate",
    )
    (cell,) = placed(SMT, request, now).cells
    assert cell.emulator_cpus == {4}
    if policy == "isolate":
        assert {p for _, p in cell.cpu_pinning} == {0, 2}
        assert cell.reserved_cpus == {1, 3}
    else:
        assert {p for _, p in cell.cpu_pinning} == {0, 1, 2, 3}
    full = usage(c0=CellUsage(frozenset({4, 5, 6, 7})))
    got = rejected(SMT, request, full)
    r = reason(got, "numa.not-enough-pcpus", host_cell=0)
    assert (r.requested, r.available) == (
        (3, 2) if policy == "isolate" else (5, 4)
    )


def test_emulator_share_takes_nothing():
    request = req(
        2, 512, hw_cpu_policy="dedicated", hw_emulator_threads_policy="share"
    )
    assert placed(flat_host(1, 4), request).cells[0].emulator_cpus == set()


def test_emulator_goes_with_guest_cell_0():
    request = req(
        4,
        1024,
        hw_cpu_policy="dedicated",
        hw_numa_nodes=2,
        hw_emulator_threads_policy="isolate",
    )
    got = placed(flat_host(2, 3), request)
    assert [len(c.emulator_cpus) for c in got.cells] == [1, 0]


# -- memory and page sizes ----------------------------------------------------

PAGES = make_host(
    make_cell(
        0, smt_groups(0, 4, 1), small_mb=4096, huge=((2048, 1024), (G1, 2))
    )
)


@pytest.mark.parametrize(
    "size, memory_mb, expected",
    [
        ("small", 1024, 4),
        ("large", 1024, G1),  # the largest that fits first
        ("large", 1536, 2048),  # 1536 MB is not a whole number of 1G pages
        ("any", 1024, G1),
        ("any", 3072, 4),  # neither huge pool holds 3 GB
        ("2048", 1024, 2048),
        ("2MB", 1024, 2048),
        ("1GB", 2048, G1),
        ("4", 1024, 4),
    ],
)
def test_page_size(size, memory_mb, expected):
    got = placed(PAGES, req(2, memory_mb, hw_mem_page_size=size))
    assert got.cells[0].pagesize_kb == expected


def test_page_size_the_cell_lacks():
    got = rejected(PAGES, req(2, 1024, hw_mem_page_size="64"))
    assert reason(got, "numa.no-page-size", host_cell=0).requested == 64


def test_large_pages_on_a_cell_with_only_small_pages():
    got = rejected(flat_host(1, 4), req(2, 1024, hw_mem_page_size="large"))
    reason(got, "numa.no-page-size", host_cell=0)


def test_memory_not_a_multiple_of_the_page_size():
    got = rejected(PAGES, req(2, 1536, hw_mem_page_size="1GB"))
    reason(got, "numa.page-size-misaligned", host_cell=0)


@pytest.mark.parametrize(
    "now, restrictions, available",
    [
        (None, None, 1024),
        (usage(c0=CellUsage(pages=((2048, 600),))), None, 424),
        (None, HostRestrictions(reserved_pages=(((0, 2048), 700),)), 324),
        (
            usage(c0=CellUsage(pages=((2048, 600),))),
            HostRestrictions(reserved_pages=(((0, 2048), 100),)),
            324,
        ),
    ],
)
def test_free_pages_after_usage_and_reserved_huge_pages(
    now, restrictions, available
):
    fits = req(2, available * 2, hw_mem_page_size="2048")
    placed(PAGES, fits, now, restrictions)
    too_big = req(2, available * 2 + 2, hw_mem_page_size="2048")
    got = rejected(PAGES, too_big, now, restrictions)
    r = reason(got, "numa.not-enough-pages", host_cell=0)
    assert (r.requested, r.available) == (available + 1, available)


def test_page_pools_are_per_cell():
    host = make_host(
        make_cell(0, smt_groups(0, 4, 1)),
        make_cell(1, smt_groups(4, 4, 1), huge=((2048, 512),)),
    )
    got = placed(host, req(2, 1024, hw_mem_page_size="large"))
    assert hosts_of(got) == [1]


def test_pinned_guest_needs_free_small_pages_floating_guest_does_not():
    host = flat_host(1, 4)  # 4096 MB of 4 KiB pages
    now = usage(c0=CellUsage(memory_mb=1000, pages=((4, 256000),)))
    got = rejected(host, req(2, 3200, hw_cpu_policy="dedicated"), now)
    r = reason(got, "numa.not-enough-memory", host_cell=0)
    assert (r.requested, r.available) == (3200, 3096)
    placed(host, req(2, 3200, hw_numa_nodes=1), now)


def mixed_two_cells():
    """Guest cell 0 pins vCPUs 0-1; guest cell 1 has only shared vCPU 2."""
    return req(
        3,
        2048,
        hw_cpu_policy="mixed",
        hw_cpu_dedicated_mask="0-1",
        hw_numa_nodes=2,
        hw_numa_cpus_0="0-1",
        hw_numa_cpus_1="2",
        hw_numa_mem_0=1024,
        hw_numa_mem_1=1024,
    )


# host cell 1: 2048 MB of 4 KiB pages, 1536 MB of them used, and 2 free
# 1 GiB pages; 4096 MB in all, 2560 MB of it free, 512 MB as small pages
SHORT_OF_SMALL_PAGES = make_host(
    make_cell(0, smt_groups(0, 4, 1)),
    make_cell(1, smt_groups(4, 4, 1), small_mb=2048, huge=((G1, 2),)),
)
SMALL_PAGES_USED = usage(c1=CellUsage(memory_mb=1536, pages=((4, 393216),)))


def test_mixed_guest_cell_without_pinned_vcpus_needs_free_small_pages():
    """Every cell of a mixed guest gets small pages that are free, as in
    Nova (``use_free`` for the whole guest's CPU policy), not only the
    cells holding dedicated vCPUs: guest cell 1 used to be checked
    against the 4 KiB pool's total and was given 1024 MB on host cell 1,
    which had 512 MB of small pages left."""
    request = mixed_two_cells()
    assert request.cells[1].pcpus == frozenset()
    got = rejected(SHORT_OF_SMALL_PAGES, request, SMALL_PAGES_USED)
    assert codes(got) == {"numa.not-enough-distinct-cells"}
    # pinned there, the reason carries the numbers
    pinned = dataclasses.replace(
        request,
        cells=(
            request.cells[0],
            dataclasses.replace(request.cells[1], host_cell=1),
        ),
    )
    got = rejected(SHORT_OF_SMALL_PAGES, pinned, SMALL_PAGES_USED)
    r = reason(got, "numa.not-enough-memory", host_cell=1, guest_cell=1)
    assert (r.requested, r.available) == (1024, 512)
    # with the small pages free again it fits, guest cell 1 on host cell 1
    assert hosts_of(placed(SHORT_OF_SMALL_PAGES, request)) == [0, 1]


def test_cell_without_page_pools_uses_its_memory():
    host = make_host(make_cell(0, smt_groups(0, 4, 1), pools=False))
    placed(host, req(2, 4096, hw_cpu_policy="dedicated"))
    now = usage(c0=CellUsage(memory_mb=1024))
    got = rejected(host, req(2, 4096, hw_cpu_policy="dedicated"), now)
    assert reason(got, "numa.not-enough-memory").available == 3072


def test_memory_is_per_cell():
    host = make_host(
        make_cell(0, smt_groups(0, 4, 1), small_mb=2048),
        make_cell(1, smt_groups(4, 4, 1), small_mb=8192),
    )
    request = req(
        4,
        5120,
        hw_numa_nodes=2,
        hw_numa_cpus_0="0-1",
        hw_numa_cpus_1="2-3",
        hw_numa_mem_0=4096,
        hw_numa_mem_1=1024,
    )
    assert hosts_of(placed(host, request)) == [1, 0]
    got = rejected(flat_host(2, 4, small_mb=2048), request)
    r = reason(got, "numa.not-enough-memory", host_cell=0)
    assert (r.guest_cell, r.requested, r.available) == (0, 4096, 2048)


# -- memory-only cells and explicit pins --------------------------------------

HBM = make_host(
    make_cell(0, smt_groups(0, 4, 1), small_mb=8192),
    make_cell(1, (), small_mb=16384),  # memory-only (HBM, CXL)
    make_cell(2, smt_groups(4, 4, 1), small_mb=1024),
)


def test_memory_only_cells_never_host_vcpus():
    # cell 1 has the most memory; still never chosen
    got = placed(HBM, req(1, 4096, hw_numa_nodes=1))
    assert hosts_of(got) == [0]
    got = rejected(HBM, req(3, 1536, hw_numa_nodes=3))
    assert codes(got) == {"numa.not-enough-distinct-cells"}
    assert reason(got, "numa.not-enough-distinct-cells").requested == 3


def test_pin_to_a_memory_only_cell():
    got = rejected(HBM, req(1, 512, hw_numa_nodes=1, hw_numa_node_0=1))
    assert codes(got) == {"numa.memory-only-cell"}
    assert reason(got, "numa.memory-only-cell").host_cell == 1


def test_pin_is_honoured():
    host = flat_host(3, 4)
    now = usage(c2=CellUsage(frozenset({8, 9, 10})))
    for pin in (0, 1, 2):
        request = req(1, 512, hw_cpu_policy="dedicated", hw_numa_node_0=pin)
        assert hosts_of(placed(host, request, now)) == [pin]


def test_pins_of_some_guest_cells_only():
    request = req(4, 1024, hw_numa_nodes=2, hw_numa_node_1=0)
    assert hosts_of(placed(flat_host(3, 4), request)) == [1, 0]


def test_pin_to_a_missing_cell():
    got = rejected(flat_host(2, 4), req(2, 512, hw_numa_node_0=5))
    r = reason(got, "numa.pinned-cell-missing")
    assert (r.host_cell, r.guest_cell) == (5, 0)
    request = req(2, 512, hw_numa_nodes=2, hw_numa_node_0=0, hw_numa_node_1=7)
    got = rejected(flat_host(2, 4), request)
    assert reason(got, "numa.pinned-cell-missing").guest_cell == 1


def test_pin_to_a_cell_too_small_says_so_for_that_cell_only():
    host = make_host(
        make_cell(0, smt_groups(0, 2, 1)), make_cell(1, smt_groups(2, 8, 1))
    )
    request = req(4, 512, hw_cpu_policy="dedicated", hw_numa_node_0=0)
    got = rejected(host, request)
    assert {r.host_cell for r in got.reasons} == {0}
    r = reason(got, "numa.not-enough-pcpus")
    assert (r.requested, r.available) == (4, 2)


# -- pack versus spread -------------------------------------------------------


def test_spread_and_pack_choose_different_cells_deterministically():
    host = flat_host(3, 4)
    now = usage(
        c0=CellUsage(frozenset({0})), c1=CellUsage(frozenset({4, 5, 6}))
    )
    request = req(1, 512, hw_cpu_policy="dedicated")
    spread = [hosts_of(placed(host, request, now)) for _ in range(3)]
    pack = [hosts_of(placed(host, request, now, pack=True)) for _ in range(3)]
    assert spread == [[2]] * 3  # the freest cell
    assert pack == [[1]] * 3  # the fullest cell that fits


def test_spread_and_pack_for_floating_guests_follow_cpu_usage():
    host = flat_host(3, 4)
    now = usage(c0=CellUsage(cpu_usage=3), c2=CellUsage(cpu_usage=1))
    request = req(1, 512, hw_numa_nodes=1)
    assert hosts_of(placed(host, request, now)) == [1]
    assert hosts_of(placed(host, request, now, pack=True)) == [0]


# -- asymmetric guest cells (Nova returns an invalid fit) ---------------------

ASYMMETRIC = [
    ("0-9", "10-16", "17-23"),
    ("0-6", "7-16", "17-23"),
    ("0-6", "7-13", "14-23"),
    ("0-9", "10-14", "15-19", "20-23"),
    ("0-4", "5-9", "10-13", "14-23"),
]


def asymmetric(cells, **extra):
    specs = {"hw_cpu_policy": "dedicated", "hw_numa_nodes": len(cells)}
    for i, cpus in enumerate(cells):
        specs[f"hw_numa_cpus_{i}"] = cpus
        specs[f"hw_numa_mem_{i}"] = 1024
    specs.update(extra)
    return req(24, 1024 * len(cells), **specs)


@pytest.mark.parametrize("cells", ASYMMETRIC)
def test_asymmetric_guest_with_a_cell_larger_than_any_host_cell(cells):
    """Nova, with three or more asymmetric guest cells, puts a 10-vCPU
    dedicated cell on an 8-CPU host cell (for the third and fifth rows;
    its fit cache is keyed by an id it overwrites: nova-fit-cache-keys in
    tests/novafit.py).  We say no, with the numbers."""
    sizes = [int(c.split("-")[1]) - int(c.split("-")[0]) + 1 for c in cells]
    big = sizes.index(10)
    got = rejected(flat_host(4, 8, small_mb=8192), asymmetric(cells))
    assert codes(got) == {"numa.not-enough-pcpus"}
    for r in got.reasons:
        assert (r.guest_cell, r.requested, r.available) == (big, 10, 8)
    assert {r.host_cell for r in got.reasons} == {0, 1, 2, 3}


@pytest.mark.parametrize("cells", ASYMMETRIC)
def test_asymmetric_guest_goes_where_each_cell_fits(cells):
    host = make_host(
        make_cell(0, smt_groups(0, 8, 1)),
        make_cell(1, smt_groups(8, 8, 1)),
        make_cell(2, smt_groups(16, 12, 1)),
        make_cell(3, smt_groups(28, 8, 1)),
    )
    got = placed(host, asymmetric(cells))
    for c in got.cells:
        if len(c.cpu_pinning) == 10:
            assert c.host_cell == 2
    now = usage(c2=CellUsage(frozenset({16, 17, 18})))
    got = rejected(host, asymmetric(cells), now)
    assert codes(got) == {"numa.not-enough-pcpus"}
    assert reason(got, "numa.not-enough-pcpus", host_cell=2).available == 9


# -- PCI NUMA affinity: the socket spec's diagrams ----------------------------
#
#   +----------+         +----------+
#   | N0    N1 |         | N2    N3 |
#   |          +---PCI   |          |
#   | Socket 0 |         | Socket 1 |
#   +----------+         +----------+

FOUR = flat_host(4, 4, socket_of=lambda i: i // 2)
NIC = parse_aliases(
    ['{"name": "nic", "vendor_id": "15b3", "product_id": "1017"}']
)


def nic(node=1, socket=0, address="0000:81:00.0"):
    return PciDevice(address, "15b3", "1017", numa_node=node, socket=socket)


def one_nic(node=1, socket=0):
    return HostDevices((nic(node, socket),))


def pci_guest(policy, pins, count=1):
    specs = {"pci_alias": f"nic:{count}", "hw_numa_nodes": len(pins)}
    if policy:
        specs["hw_pci_numa_affinity_policy"] = policy
    for i, pin in enumerate(pins):
        if pin is not None:
            specs[f"hw_numa_node_{i}"] = pin
    return req(2 * len(pins), 1024 * len(pins), **specs)


def pci_fit(request, devices, topology=FOUR, now=None, aliases=NIC):
    got = fit(topology, request, now, None, devices, aliases)
    if isinstance(got, Placement):
        assert (
            check_placement(
                topology, request, got, now or Usage(), None, devices, aliases
            )
            == []
        )
    else:
        assert got.reasons
    return got


@pytest.mark.parametrize("pin", [0, 1, 2, 3])
def test_socket_one_cell_guest_on_n0_or_n1_only(pin):
    got = pci_fit(pci_guest("socket", [pin]), one_nic())
    if pin in (0, 1):
        assert isinstance(got, Placement) and hosts_of(got) == [pin]
        assert got.pci_devices == ("0000:81:00.0",)
    else:
        assert codes(got) == {"pci.no-device-on-socket"}
        r = reason(got, "pci.no-device-on-socket")
        assert (r.requested, r.available) == (1, 0)


@pytest.mark.parametrize("pair", list(itertools.permutations(range(4), 2)))
def test_socket_two_cell_guest_any_pair_but_n2_n3(pair):
    got = pci_fit(pci_guest("socket", list(pair)), one_nic())
    if set(pair) == {2, 3}:
        assert codes(got) == {"pci.no-device-on-socket"}
    else:
        assert isinstance(got, Placement) and hosts_of(got) == list(pair)


def test_socket_uses_the_other_cell_of_the_devices_socket():
    # N1, the device's own cell, is full: N0 is on the same socket, and
    # spread would rather take N2 or N3, where N0 has a CPU pinned
    now = usage(
        c0=CellUsage(frozenset({0})), c1=CellUsage(frozenset(range(4, 8)))
    )
    request = req(
        2,
        512,
        hw_cpu_policy="dedicated",
        hw_pci_numa_affinity_policy="socket",
        pci_alias="nic:1",
    )
    got = pci_fit(request, one_nic(), now=now)
    assert hosts_of(got) == [0]


def test_socket_two_cell_guest_when_only_n2_n3_are_left():
    now = usage(
        c0=CellUsage(frozenset(range(0, 4))),
        c1=CellUsage(frozenset(range(4, 8))),
    )
    request = req(
        4,
        1024,
        hw_cpu_policy="dedicated",
        hw_numa_nodes=2,
        hw_pci_numa_affinity_policy="socket",
        pci_alias="nic:1",
    )
    got = pci_fit(request, one_nic(), now=now)
    assert codes(got) == {"pci.no-device-on-socket"}
    assert pci_fit(request, one_nic(node=2, socket=1), now=now).cells


@pytest.mark.parametrize("policy", ["required", "legacy", None])
@pytest.mark.parametrize("pin", [0, 1, 2, 3])
def test_required_and_legacy_one_cell_guest(policy, pin):
    got = pci_fit(pci_guest(policy, [pin]), one_nic())
    if pin == 1:
        assert hosts_of(got) == [1]
    else:
        assert codes(got) == {"pci.no-device-on-cell"}
        r = reason(got, "pci.no-device-on-cell")
        assert (r.requested, r.available) == (1, 0)


@pytest.mark.parametrize("policy", ["required", "legacy"])
@pytest.mark.parametrize("pair", list(itertools.permutations(range(4), 2)))
def test_required_and_legacy_two_cell_guest(policy, pair):
    got = pci_fit(pci_guest(policy, list(pair)), one_nic())
    if 1 in pair:
        assert hosts_of(got) == list(pair)
    else:
        assert codes(got) == {"pci.no-device-on-cell"}


def test_unpinned_required_guest_goes_to_the_devices_cell():
    for node in range(4):
        got = pci_fit(pci_guest("required", [None]), one_nic(node, node // 2))
        assert hosts_of(got) == [node]


@pytest.mark.parametrize("pin", [0, 1, 2, 3])
def test_device_without_numa_information(pin):
    devices = one_nic(node=None, socket=None)
    # legacy: qualifies anywhere
    assert hosts_of(pci_fit(pci_guest("legacy", [pin]), devices)) == [pin]
    # required: never
    got = pci_fit(pci_guest("required", [pin]), devices)
    assert codes(got) == {"pci.no-device-on-cell"}
    # socket: a device with unknown socket never qualifies
    got = pci_fit(pci_guest("socket", [pin]), devices)
    assert codes(got) == {"pci.no-device-on-socket"}
    # preferred: anything will do
    assert hosts_of(pci_fit(pci_guest("preferred", [pin]), devices)) == [pin]


@pytest.mark.parametrize("pin", [0, 1, 2, 3])
def test_socket_device_with_unknown_socket_never_qualifies(pin):
    # the device has a cell, but the cell's socket is unknown
    got = pci_fit(pci_guest("socket", [pin]), one_nic(node=1, socket=None))
    assert codes(got) == {"pci.no-device-on-socket"}


@pytest.mark.parametrize("pin", [0, 1, 2, 3])
def test_preferred_accepts_any_device(pin):
    got = pci_fit(pci_guest("preferred", [pin]), one_nic())
    assert hosts_of(got) == [pin] and got.pci_devices == ("0000:81:00.0",)


def test_preferred_takes_the_local_device_when_there_is_one():
    devices = HostDevices(
        (nic(0, 0, "0000:10:00.0"), nic(3, 1, "0000:20:00.0"))
    )
    for pin, want in ((0, "0000:10:00.0"), (3, "0000:20:00.0")):
        got = pci_fit(pci_guest("preferred", [pin]), devices)
        assert got.pci_devices == (want,)


def test_preferred_prefers_local_devices_when_some_must_be_remote():
    """Preferred takes every local device it can before remote ones.

    Guest pinned to N0 wants 2 devices (preferred).  N1 has 0000:01:00.0
    and 0000:02:00.0, N0 has 0000:03:00.0: the answer must include N0's
    0000:03:00.0 (it once took the first two by address, both on N1).
    """
    devices = HostDevices(
        (
            nic(1, 0, "0000:01:00.0"),
            nic(1, 0, "0000:02:00.0"),
            nic(0, 0, "0000:03:00.0"),
        )
    )
    got = pci_fit(pci_guest("preferred", [0], count=2), devices)
    assert "0000:03:00.0" in got.pci_devices


def test_alias_policy_applies_unless_the_flavor_overrides_it():
    aliases = parse_aliases(
        [
            '{"name": "nic", "vendor_id": "15b3", "product_id": "1017", '
            '"numa_policy": "socket"}'
        ]
    )
    got = pci_fit(pci_guest(None, [0]), one_nic(), aliases=aliases)
    assert hosts_of(got) == [0]
    got = pci_fit(pci_guest("required", [0]), one_nic(), aliases=aliases)
    assert codes(got) == {"pci.no-device-on-cell"}


def test_not_enough_matching_devices():
    got = pci_fit(pci_guest("preferred", [None], count=2), one_nic())
    r = reason(got, "pci.not-enough-devices")
    assert (r.requested, r.available) == (2, 1)


def test_unknown_alias_is_a_request_error():
    with pytest.raises(RequestError) as err:
        fit(FOUR, pci_guest(None, [0]), devices=one_nic(), aliases={})
    assert err.value.code == "request.pci-alias-unknown"


SRIOV = HostDevices(
    (
        PciDevice(
            "0000:3b:00.0",
            "15b3",
            "101b",
            numa_node=0,
            socket=0,
            dev_type=TYPE_PF,
            vf_addresses=("0000:3b:00.2", "0000:3b:00.3"),
        ),
        PciDevice(
            "0000:3b:00.2",
            "15b3",
            "101c",
            numa_node=0,
            socket=0,
            dev_type=TYPE_VF,
            parent_address="0000:3b:00.0",
        ),
        PciDevice(
            "0000:3b:00.3",
            "15b3",
            "101c",
            numa_node=0,
            socket=0,
            dev_type=TYPE_VF,
            parent_address="0000:3b:00.0",
        ),
    )
)
SRIOV_ALIASES = parse_aliases(
    [
        '{"name": "pf", "vendor_id": "15b3", "product_id": "101b", '
        '"device_type": "type-PF"}',
        '{"name": "vf", "vendor_id": "15b3", "product_id": "101c", '
        '"device_type": "type-VF"}',
    ]
)


@pytest.mark.parametrize(
    "in_use, alias, free",
    [
        ((), "pf:1", 1),
        ((), "vf:2", 2),
        (("0000:3b:00.2",), "pf:1", 0),  # a VF in use ties up its PF
        (("0000:3b:00.2",), "vf:1", 1),
        (("0000:3b:00.0",), "vf:1", 0),  # the PF in use takes its VFs
    ],
)
def test_pf_and_vf_tie_each_other_up(in_use, alias, free):
    now = Usage((), frozenset(in_use))
    request = req(1, 512, hw_numa_nodes=1, pci_alias=alias)
    got = pci_fit(request, SRIOV, now=now, aliases=SRIOV_ALIASES)
    count = int(alias.split(":")[1])
    if free >= count:
        assert len(got.pci_devices) == count
        assert not set(got.pci_devices) & set(in_use)
    else:
        r = reason(got, "pci.not-enough-devices")
        assert (r.requested, r.available) == (count, free)


def test_guest_without_numa_cells_takes_any_device():
    """A guest without a NUMA topology takes any device: Nova applies PCI
    NUMA affinity only to guests with one (this was once rejected, with
    no reason at all).
    """
    topology, devices = gpu8()
    for policy in (None, "required", "socket"):
        specs = {"pci_alias": "gpu:1"}
        if policy:
            specs["hw_pci_numa_affinity_policy"] = policy
        request = req(2, 1024, **specs)
        assert request.cells == ()
        got = fit(topology, request, None, None, devices, GPU_ALIASES)
        assert isinstance(got, Placement), got
        assert len(got.pci_devices) == 1
        assert (
            check_placement(
                topology, request, got, Usage(), None, devices, GPU_ALIASES
            )
            == []
        )


# -- the shipped gpu8-2s host -------------------------------------------------

GPU_ALIASES = parse_aliases(
    [
        '{"name": "gpu", "vendor_id": "10de", "product_id": "20b5"}',
        '{"name": "vf", "vendor_id": "15b3", "product_id": "101c", '
        '"device_type": "type-VF"}',
        '{"name": "pf", "vendor_id": "15b3", "product_id": "101b", '
        '"device_type": "type-PF"}',
    ]
)


def gpu8():
    topology = parse_capabilities(CAPS.read_text())
    devices = parse_node_devices(split_node_file(NODE.read_text()), topology)
    return topology, devices


def gpu_fit(request, now=None):
    topology, devices = gpu8()
    got = fit(topology, request, now, None, devices, GPU_ALIASES)
    if isinstance(got, Placement):
        assert (
            check_placement(
                topology,
                request,
                got,
                now or Usage(),
                None,
                devices,
                GPU_ALIASES,
            )
            == []
        )
    else:
        assert got.reasons
    return got


def gpu_cells(got):
    _, devices = gpu8()
    by = devices.by_address()
    return sorted(by[a].numa_node for a in got.pci_devices)


def test_gpu8_required_two_gpus_on_the_guests_cell():
    got = gpu_fit(
        req(
            8,
            4096,
            hw_cpu_policy="dedicated",
            pci_alias="gpu:2",
            hw_pci_numa_affinity_policy="required",
        )
    )
    assert gpu_cells(got) == hosts_of(got) * 2


def test_gpu8_required_three_gpus_on_one_cell_do_not_exist():
    got = gpu_fit(
        req(
            8,
            4096,
            hw_cpu_policy="dedicated",
            pci_alias="gpu:3",
            hw_pci_numa_affinity_policy="required",
        )
    )
    assert codes(got) == {"pci.no-combination"}


def test_gpu8_socket_four_gpus_on_one_socket():
    topology, _ = gpu8()
    got = gpu_fit(
        req(
            8,
            4096,
            hw_cpu_policy="dedicated",
            pci_alias="gpu:4",
            hw_pci_numa_affinity_policy="socket",
        )
    )
    socket = topology.socket_of_cell(hosts_of(got)[0])
    assert {topology.socket_of_cell(n) for n in gpu_cells(got)} == {socket}


def test_gpu8_socket_five_gpus_need_both_sockets():
    topology, _ = gpu8()
    one = gpu_fit(
        req(
            8,
            4096,
            hw_cpu_policy="dedicated",
            pci_alias="gpu:5",
            hw_pci_numa_affinity_policy="socket",
        )
    )
    assert isinstance(one, Rejection)
    two = gpu_fit(
        req(
            8,
            4096,
            hw_cpu_policy="dedicated",
            hw_numa_nodes=2,
            pci_alias="gpu:5",
            hw_pci_numa_affinity_policy="socket",
        )
    )
    assert {topology.socket_of_cell(h) for h in hosts_of(two)} == {0, 1}


def test_gpu8_all_eight_gpus_need_all_four_cells():
    got = gpu_fit(
        req(
            16,
            8192,
            hw_cpu_policy="dedicated",
            hw_numa_nodes=4,
            pci_alias="gpu:8",
            hw_pci_numa_affinity_policy="required",
        )
    )
    assert sorted(hosts_of(got)) == [0, 1, 2, 3]
    got = gpu_fit(
        req(
            12,
            6144,
            hw_cpu_policy="dedicated",
            hw_numa_nodes=3,
            pci_alias="gpu:8",
            hw_pci_numa_affinity_policy="required",
        )
    )
    assert codes(got) == {"pci.no-combination"}


def test_gpu8_isolate_takes_at_most_one_thread_per_core():
    got = gpu_fit(
        req(
            16, 4096, hw_cpu_policy="dedicated", hw_cpu_thread_policy="isolate"
        )
    )
    assert len(got.cells[0].reserved_cpus) == 16
    got = gpu_fit(
        req(
            17, 4096, hw_cpu_policy="dedicated", hw_cpu_thread_policy="isolate"
        )
    )
    for cell in range(4):
        r = reason(got, "numa.not-enough-free-cores", host_cell=cell)
        assert (r.requested, r.available) == (17, 16)


def test_gpu8_thirty_two_threads_require():
    got = gpu_fit(
        req(
            32, 4096, hw_cpu_policy="dedicated", hw_cpu_thread_policy="require"
        )
    )
    (cell,) = got.cells
    assert len(cell.cpu_pinning) == 32


# -- usage: the DESIGN.md example ---------------------------------------------

DESIGN_USAGE = {
    "cells": {
        "3": {
            "pinned_cpus": [24, 25],
            "cpu_usage": 0,
            "memory_mb": 4096,
            "pages": {"2048": 1024},
        }
    },
    "pci_devices_in_use": ["0000:3b:00.0"],
}


def test_usage_from_dict_of_the_design_example():
    got = usage_from_dict(json.loads(json.dumps(DESIGN_USAGE)))
    assert got == Usage(
        ((3, CellUsage(frozenset({24, 25}), 0, 4096, ((2048, 1024),))),),
        frozenset({"0000:3b:00.0"}),
    )
    assert got.to_dict() == DESIGN_USAGE
    assert usage_from_dict(got.to_dict()) == got


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"cells": {"x": {}}},
        {"cells": {"0": []}},
        {"cells": {"0": {"pinned_cpus": ["a"]}}},
        {"cells": {"0": {"pages": {"2M": 1}}}},
        {"pci_devices_in_use": "0000:3b:00.0"},
    ],
)
def test_usage_from_dict_refuses_bad_input(data):
    with pytest.raises(RequestError) as err:
        usage_from_dict(data)
    assert err.value.code == "usage.invalid"


def test_design_usage_on_gpu8():
    now = usage_from_dict(DESIGN_USAGE)
    # every 2 MiB page of cell 3 is used
    got = gpu_fit(req(2, 1024, hw_mem_page_size="2048", hw_numa_node_0=3), now)
    r = reason(got, "numa.not-enough-pages", host_cell=3)
    assert (r.requested, r.available) == (512, 0)
    placed_ = gpu_fit(req(2, 1024, hw_mem_page_size="2048"), now)
    assert hosts_of(placed_) != [3]
    # the PF is in use, so none of its VFs is free
    got = gpu_fit(req(2, 1024, hw_numa_nodes=1, pci_alias="vf:1"), now)
    r = reason(got, "pci.not-enough-devices")
    assert (r.requested, r.available) == (1, 0)


# -- claims -------------------------------------------------------------------


def test_claim_release_round_trip_restores_every_cell():
    topology, devices = gpu8()
    request = req(
        4,
        4096,
        hw_cpu_policy="dedicated",
        hw_numa_nodes=2,
        hw_mem_page_size="2048",
        pci_alias="gpu:2",
    )
    start = usage_from_dict(DESIGN_USAGE)
    got = gpu_fit(request, start)
    claimed = claim(topology, start, got)
    assert claimed != start
    back = release(topology, claimed, got)
    for cell in topology.cells:
        assert back.cell(cell.id) == start.cell(cell.id)
    assert back.pci_devices_in_use == start.pci_devices_in_use
    assert back.to_dict()["pci_devices_in_use"] == ["0000:3b:00.0"]


def test_release_is_the_exact_inverse_of_claim():
    """``release(claim(u, p)) == u``: a released cell disappears, so usage
    tracked through claims and releases equals ``rebuild`` of the guests
    that remain."""
    host = flat_host(2, 4)
    first = placed(host, req(1, 512, hw_cpu_policy="dedicated"))
    second = placed(
        host,
        req(1, 512, hw_cpu_policy="dedicated", hw_numa_node_0=1),
        claim(host, Usage(), first),
    )
    assert release(host, claim(host, Usage(), first), first) == Usage()
    tracked = release(
        host, claim(host, claim(host, Usage(), first), second), first
    )
    assert tracked == rebuild(host, [second])


def _claim_error(fn, *args, **kw):
    with pytest.raises(NovaSlicesError) as err:
        fn(*args, **kw)
    return err.value.code


def test_claim_refuses_a_cpu_already_pinned():
    host = flat_host(1, 4)
    got = placed(host, req(2, 512, hw_cpu_policy="dedicated"))
    now = claim(host, Usage(), got)
    assert _claim_error(claim, host, now, got) == "claim.cpu-in-use"


def test_claim_refuses_pages_beyond_the_pool():
    host = PAGES  # 1024 pages of 2 MiB
    got = placed(host, req(2, 1536, hw_mem_page_size="2048"))
    now = claim(host, Usage(), got)  # 768 pages; floating, no CPU pinned
    assert _claim_error(claim, host, now, got) == "claim.not-enough-pages"


def test_claim_never_overcommits_a_mixed_guests_cell_without_pins():
    """The claim is as strict as the fit: guest cell 1 of a mixed guest
    has no pinned vCPU, yet its small pages count against the pool."""
    got = placed(SHORT_OF_SMALL_PAGES, mixed_two_cells())
    assert got.cells[1].cpu_pinning == () and got.cells[1].pinned_guest
    assert (
        _claim_error(claim, SHORT_OF_SMALL_PAGES, SMALL_PAGES_USED, got)
        == "claim.not-enough-pages"
    )


def test_claim_counts_reserved_huge_pages():
    host = PAGES
    got = placed(host, req(2, 1536, hw_mem_page_size="2048"))
    reserved = HostRestrictions(reserved_pages=(((0, 2048), 300),))
    assert (
        _claim_error(claim, host, Usage(), got, reserved)
        == "claim.not-enough-pages"
    )
    assert claim(host, Usage(), got).cell(0).pages_used(2048) == 768


def test_claim_refuses_a_device_already_in_use():
    request = req(1, 512, hw_numa_nodes=1, pci_alias="nic:1")
    got = pci_fit(request, one_nic())
    now = claim(FOUR, Usage(), got)
    assert now.pci_devices_in_use == {"0000:81:00.0"}
    assert _claim_error(claim, FOUR, now, got) == "claim.device-in-use"
    # and the fitter agrees: nothing left to give
    assert codes(pci_fit(request, one_nic(), now=now)) == {
        "pci.not-enough-devices"
    }


def test_release_refuses_what_is_not_held():
    host = flat_host(1, 4)
    got = placed(host, req(2, 512, hw_cpu_policy="dedicated"))
    assert _claim_error(release, host, Usage(), got) == "claim.not-held"


def test_claim_on_a_missing_cell():
    host = flat_host(1, 4)
    got = placed(host, req(2, 512, hw_cpu_policy="dedicated"))
    moved = Placement(
        (dataclasses.replace(got.cells[0], host_cell=9),), got.pci_devices
    )
    assert _claim_error(claim, host, Usage(), moved) == "claim.unknown-cell"


def test_rebuild_equals_sequential_claims_in_any_order():
    topology, devices = gpu8()
    requests = [
        req(8, 4096, hw_cpu_policy="dedicated", pci_alias="gpu:2"),
        req(4, 2048, hw_numa_nodes=2, hw_mem_page_size="1GB"),
        req(6, 3072, hw_numa_nodes=1, pci_alias="vf:2"),
        req(
            16,
            8192,
            hw_cpu_policy="dedicated",
            hw_cpu_thread_policy="isolate",
            hw_emulator_threads_policy="isolate",
            hw_numa_nodes=2,
        ),
    ]
    now, placements = Usage(), []
    for request in requests:
        got = gpu_fit(request, now)
        now = claim(topology, now, got)
        placements.append(got)
    assert rebuild(topology, placements) == now
    assert rebuild(topology, placements[::-1]) == now
    # nothing was handed out twice
    cpus = [p for got in placements for p in pinned_cpus(got)]
    assert len(cpus) == len(set(cpus))
    devices_ = [a for got in placements for a in got.pci_devices]
    assert len(devices_) == len(set(devices_))


# -- shared vCPUs next to the guest's own pinned CPUs -------------------------


@pytest.mark.parametrize(
    "host, now, thread_policy",
    [
        # one CPU: vCPU 0 pinned to it, vCPU 1 has nowhere else to float
        (flat_host(1, 1), None, None),
        # CPU 1 pinned by someone else, CPU 0 by this guest
        (flat_host(1, 2), usage(c0=CellUsage(frozenset({1}))), None),
        # isolate: CPU 1 is reserved so that nothing runs beside CPU 0
        (make_host(make_cell(0, [(0, 1)])), None, "isolate"),
    ],
)
def test_shared_vcpus_never_float_over_the_guests_own_pinned_cpus(
    host, now, thread_policy
):
    """A mixed guest's shared vCPUs never float over its own pinned,
    reserved or emulator CPUs: either a placement that excludes them or
    numa.not-enough-shared-cpus."""
    specs = {"hw_cpu_policy": "mixed", "hw_cpu_dedicated_mask": "0"}
    if thread_policy:
        specs["hw_cpu_thread_policy"] = thread_policy
    request = req(2, 512, **specs)
    got = fit(host, request, now)
    if isinstance(got, Placement):
        assert check_placement(host, request, got, now or Usage()) == []
    else:
        assert got.reasons


def test_guest_without_numa_cells_and_no_devices():
    got = placed(flat_host(2, 4), req(2, 1024))
    assert got.cells == () and got.pci_devices == ()


# -- the checker itself catches broken placements ----------------------------


def _one(placement, **changes):
    cell = dataclasses.replace(placement.cells[0], **changes)
    return dataclasses.replace(placement, cells=(cell,) + placement.cells[1:])


def _broken():
    """(name, topology, request, placement, usage, restrictions, devices,
    aliases) for placements that each break one rule."""
    out = []
    host = flat_host(2, 4)
    ded = req(2, 512, hw_cpu_policy="dedicated")
    good = placed(host, ded)
    out += [
        ("cpu twice", host, ded, _one(good, cpu_pinning=((0, 0), (1, 0)))),
        ("vcpu missing", host, ded, _one(good, cpu_pinning=((0, 0),))),
        (
            "cpu of another cell",
            host,
            ded,
            _one(good, cpu_pinning=((0, 0), (1, 4))),
        ),
        ("memory", host, ded, _one(good, memory_mb=256)),
        ("page size", host, ded, _one(good, pagesize_kb=4)),
        ("emulator", host, ded, _one(good, emulator_cpus=frozenset({3}))),
        ("reserved", host, ded, _one(good, reserved_cpus=frozenset({3}))),
    ]
    now = usage(c0=CellUsage(frozenset({0})))
    out.append(
        (
            "already pinned",
            host,
            ded,
            _one(good, cpu_pinning=((0, 0), (1, 1))),
            now,
        )
    )
    sets = HostRestrictions(frozenset({2, 3, 6, 7}), frozenset({0, 1, 4, 5}))
    out.append(
        (
            "outside dedicated set",
            host,
            ded,
            _one(good, cpu_pinning=((0, 0), (1, 1))),
            None,
            sets,
        )
    )
    pinned = req(2, 512, hw_cpu_policy="dedicated", hw_numa_node_0=1)
    out.append(
        (
            "pin ignored",
            host,
            pinned,
            _one(
                placed(host, pinned), host_cell=0, cpu_pinning=((0, 0), (1, 1))
            ),
        )
    )
    two = req(2, 1024, hw_cpu_policy="dedicated", hw_numa_nodes=2)
    p2 = placed(host, two)
    out.append(
        (
            "same host twice",
            host,
            two,
            dataclasses.replace(
                p2,
                cells=(
                    p2.cells[0],
                    dataclasses.replace(
                        p2.cells[1],
                        host_cell=p2.cells[0].host_cell,
                        cpu_pinning=((1, 3),),
                    ),
                ),
            ),
        )
    )
    out.append(
        (
            "memory-only",
            HBM,
            req(1, 512, hw_numa_nodes=1),
            _one(
                placed(HBM, req(1, 512, hw_numa_nodes=1)),
                host_cell=1,
                shared_cpus=frozenset(),
            ),
        )
    )
    shared = req(2, 512, hw_numa_nodes=1)
    ps = placed(host, shared)
    out.append(
        (
            "shared outside pool",
            host,
            shared,
            _one(ps, shared_cpus=frozenset({4})),
            None,
            None,
        )
    )
    out.append(
        ("shared none", host, shared, _one(ps, shared_cpus=frozenset()))
    )
    iso = req(
        2, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="isolate"
    )
    pi = placed(SMT, iso)
    out.append(
        (
            "isolate sibling unreserved",
            SMT,
            iso,
            _one(pi, reserved_cpus=frozenset()),
        )
    )
    out.append(
        (
            "isolate sibling pinned",
            SMT,
            iso,
            _one(pi, cpu_pinning=((0, 0), (1, 1)), reserved_cpus=frozenset()),
        )
    )
    rq = req(2, 512, hw_cpu_policy="dedicated", hw_cpu_thread_policy="require")
    pr = placed(SMT, rq)
    out.append(
        ("require unpacked", SMT, rq, _one(pr, cpu_pinning=((0, 0), (1, 2))))
    )
    emu = req(
        2, 512, hw_cpu_policy="dedicated", hw_emulator_threads_policy="isolate"
    )
    pe = placed(host, emu)
    out.append(
        ("emulator missing", host, emu, _one(pe, emulator_cpus=frozenset()))
    )
    out.append(
        (
            "emulator on a pin",
            host,
            emu,
            _one(pe, emulator_cpus=frozenset({pe.cells[0].cpu_pinning[0][1]})),
        )
    )
    big = req(2, 2048, hw_mem_page_size="2048")
    pb = placed(PAGES, big)
    out.append(
        (
            "pages used up",
            PAGES,
            big,
            pb,
            usage(c0=CellUsage(pages=((2048, 100),))),
        )
    )
    out.append(
        (
            "small for large",
            PAGES,
            req(2, 1024, hw_mem_page_size="large"),
            _one(
                placed(PAGES, req(2, 1024, hw_mem_page_size="large")),
                pagesize_kb=4,
            ),
        )
    )
    out.append(
        (
            "misaligned",
            PAGES,
            req(2, 1536, hw_mem_page_size="large"),
            _one(
                placed(PAGES, req(2, 1536, hw_mem_page_size="large")),
                pagesize_kb=G1,
            ),
        )
    )
    sock = pci_guest("socket", [0])
    psock = pci_fit(sock, one_nic())
    out.append(
        (
            "device on the other socket",
            FOUR,
            sock,
            psock,
            None,
            None,
            one_nic(node=2, socket=1),
            NIC,
        )
    )
    out.append(
        (
            "device in use",
            FOUR,
            sock,
            psock,
            Usage((), frozenset({"0000:81:00.0"})),
            None,
            one_nic(),
            NIC,
        )
    )
    out.append(
        (
            "device missing",
            FOUR,
            sock,
            dataclasses.replace(psock, pci_devices=()),
            None,
            None,
            one_nic(),
            NIC,
        )
    )
    vf = req(1, 512, hw_numa_nodes=1, pci_alias="vf:1")
    pvf = pci_fit(vf, SRIOV, aliases=SRIOV_ALIASES)
    out.append(
        (
            "VF of a PF in use",
            FOUR,
            vf,
            pvf,
            Usage((), frozenset({"0000:3b:00.0"})),
            None,
            SRIOV,
            SRIOV_ALIASES,
        )
    )
    out.append(
        (
            "PF for a VF",
            FOUR,
            vf,
            dataclasses.replace(pvf, pci_devices=("0000:3b:00.0",)),
            None,
            None,
            SRIOV,
            SRIOV_ALIASES,
        )
    )
    return [(case + (None,) * (8 - len(case))) for case in out]


@pytest.mark.parametrize("case", _broken(), ids=lambda c: c[0])
def test_the_checker_catches(case):
    name, topology, request, placement, now, restrictions, devices, aliases = (
        case
    )
    assert check_placement(
        topology,
        request,
        placement,
        now or Usage(),
        restrictions,
        devices,
        aliases,
    ), name


def test_claim_with_devices_refuses_a_pf_whose_vf_is_in_use():
    topology, devices = gpu8()
    pf = "0000:3b:00.0"
    vf = devices.device(pf).vf_addresses[0]
    busy = Usage((), frozenset({vf}))
    placement = Placement((), (pf,))
    with pytest.raises(ClaimError) as info:
        claim(topology, busy, placement, devices=devices)
    assert info.value.code == "claim.device-in-use"
    # without the device list the tie cannot be seen
    assert pf in claim(topology, busy, placement).pci_devices_in_use
