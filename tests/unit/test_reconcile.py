"""The reconciler, the holdings it compares, and the one CPU-pool rule.

* every disagreement between guests, allocations and capacity, one table
  row per code, on the shipped gpu8-2s host (224 x 1G pages per cell);
* holdings read from a rendered slice template and from a dynamic guest's
  record (its floating vCPUs hold nothing);
* the CPU pools the fitter, the root inventory and the domain XML share;
* the repairs the reconciler makes on its own, one table row per case.
"""

import dataclasses

import pytest
from lxml import etree

from nova_slices.compute.inventory import Ratios, root_inventories
from nova_slices.compute.journal import Intent
from nova_slices.compute.reconcile import (
    GuestState,
    plan_repairs,
    reconcile,
    unreadable_problems,
)
from nova_slices.compute.usage import record_holdings
from nova_slices.errors import GuestError
from nova_slices.fit.fitter import fit
from nova_slices.host.restrictions import HostRestrictions, cpu_pools
from nova_slices.request.build import build_request
from nova_slices.virt import metadata
from nova_slices.virt.guest_xml import GuestDomain, guest_domain
from nova_slices.virt.holdings import Holdings, domain_holdings
from tests.unit.test_guest_xml import RESTRICTIONS, TOPOLOGY

G1 = 1024 * 1024
SLICE = "slice-rp"
ROOT = "root-rp"


def guest(name, uuid=None, expected=None, **held):
    fields = {
        k: frozenset(v) if k != "pages" else tuple(v) for k, v in held.items()
    }
    return GuestState(
        name,
        Holdings(**fields),
        uuid,
        expected if expected is not None else {},
        "on slice s",
    )


ONE = {SLICE: {"CUSTOM_SLICE_1_GPU_V1": 1}}


CASES = [
    # (id, guests, allocations, expected [(code, instance uuid, name)])
    (
        "all agree",
        [guest("a", "ua", ONE, pinned_cpus={1, 2}, pci={"0000:17:00.0"})],
        {"ua": ONE},
        [],
    ),
    (
        "guest without allocation",
        [guest("a", "ua", ONE)],
        {},
        [("guest.no-allocation", "ua", "a")],
    ),
    (
        "allocation without guest",
        [],
        {"ux": ONE},
        [("allocation.no-guest", "ux", None)],
    ),
    (
        "allocation on another provider",
        [guest("a", "ua", ONE)],
        {"ua": {ROOT: {"VCPU": 2}}},
        [("guest.allocation-mismatch", "ua", "a")],
    ),
    (
        "allocation of another amount",
        [guest("a", "ua", {ROOT: {"PCPU": 4}})],
        {"ua": {ROOT: {"PCPU": 2}}},
        [("guest.allocation-mismatch", "ua", "a")],
    ),
    (
        "two guests pin one pCPU",
        [
            guest("a", "ua", pinned_cpus={1, 2}),
            guest("b", "ub", pinned_cpus={2, 3}),
        ],
        {"ua": {ROOT: {}}, "ub": {ROOT: {}}},
        [("usage.cpu-shared", "ub", "b")],
    ),
    (
        "emulator threads on another guest's pinned pCPU",
        [
            guest("a", "ua", pinned_cpus={1, 2}),
            guest("b", "ub", pinned_cpus={3}, emulator_cpus={2}),
        ],
        {"ua": {ROOT: {}}, "ub": {ROOT: {}}},
        [("usage.cpu-shared", "ub", "b")],
    ),
    (
        "emulator cores shared by slice guests are fine",
        [
            guest("a", "ua", pinned_cpus={1}, emulator_cpus={0}),
            guest("b", "ub", pinned_cpus={2}, emulator_cpus={0}),
        ],
        {"ua": {ROOT: {}}, "ub": {ROOT: {}}},
        [],
    ),
    (
        "two guests hold one GPU",
        [
            guest("a", "ua", pci={"0000:17:00.0"}),
            guest("b", "ub", pci={"0000:17:00.0"}),
        ],
        {"ua": {ROOT: {}}, "ub": {ROOT: {}}},
        [("usage.device-shared", "ub", "b")],
    ),
    (
        "an mdev in ours and in a foreign domain",
        [
            guest("a", "ua", mdevs={"m-1"}),
            guest("z-foreign", mdevs={"m-1"}),
        ],
        {"ua": {ROOT: {}}},
        [("usage.device-shared", "", "z-foreign")],
    ),
    (
        "1G pages over the pool",
        [
            guest("a", "ua", pages=[((0, G1), 200)]),
            guest("b", "ub", pages=[((0, G1), 30)]),
        ],
        {"ua": {ROOT: {}}, "ub": {ROOT: {}}},
        [("usage.pages-over-pool", "", None)],
    ),
    (
        "1G pages exactly fill the pool",
        [
            guest("a", "ua", pages=[((0, G1), 200)]),
            guest("b", "ub", pages=[((0, G1), 24)]),
        ],
        {"ua": {ROOT: {}}, "ub": {ROOT: {}}},
        [],
    ),
    (
        "pinned to a CPU the host lacks",
        [guest("a", "ua", pinned_cpus={4096})],
        {"ua": {ROOT: {}}},
        [("usage.not-on-host", "ua", "a")],
    ),
]


@pytest.mark.parametrize(
    "guests, allocations, expected",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_every_disagreement_has_its_code(guests, allocations, expected):
    found = reconcile(guests, allocations, TOPOLOGY)
    assert [(d.code, d.instance_uuid, d.name) for d in found] == expected


def test_messages_name_both_guests_and_the_shared_thing():
    found = reconcile(
        [
            guest("a", "ua", pinned_cpus={1, 2}, pci={"0000:17:00.0"}),
            guest("b", "ub", pinned_cpus={2}, pci={"0000:17:00.0"}),
        ],
        {"ua": {ROOT: {}}, "ub": {ROOT: {}}},
        TOPOLOGY,
    )
    text = {d.code: d.message for d in found}
    assert text["usage.cpu-shared"] == (
        "guests a and b have vCPUs pinned to host CPU(s) 2"
    )
    assert text["usage.device-shared"] == (
        "guests a and b both hold PCI device 0000:17:00.0"
    )


def test_reserved_pages_shrink_the_pool():
    pages = [guest("a", "ua", pages=[((0, G1), 224)])]
    allocations = {"ua": {ROOT: {}}}
    assert reconcile(pages, allocations, TOPOLOGY) == ()
    reserved = HostRestrictions(reserved_pages=(((0, G1), 4),))
    (found,) = reconcile(pages, allocations, TOPOLOGY, reserved)
    assert found.code == "usage.pages-over-pool"
    assert "220 pages" in found.message and "hold 224" in found.message


def test_provider_names_replace_uuids_in_messages():
    (found,) = reconcile([], {"ux": ONE}, TOPOLOGY, names={SLICE: "host_1_1"})
    assert "host_1_1" in found.message and SLICE not in found.message


# -- repairs -------------------------------------------------------------

NOW = 10_000.0
GRACE = 300


def intent(consumer, live, op="spawn", started=NOW - 5):
    return Intent(consumer, op, "g", started, 42, live)


@dataclasses.dataclass(frozen=True)
class Broken:
    name: str
    path: str
    reason: str
    instance_uuid: str | None


REPAIRS = [
    # (id, guests, allocations, intents, seen, unreadable,
    #  released, kept, reclaimed, forgotten, seen afterwards)
    (
        "all agree: nothing to do",
        [guest("a", "ua", ONE)],
        {"ua": ONE},
        [],
        {},
        [],
        [],
        [],
        [],
        [],
        {},
    ),
    (
        "a spawn died after its claim: released at once",
        [],
        {"ux": ONE},
        [intent("ux", live=False)],
        {},
        [],
        ["ux"],
        [],
        [],
        ["ux"],
        {},
    ),
    (
        "a destroy died after its undefine: released at once",
        [],
        {"ux": ONE},
        [intent("ux", live=False, op="destroy", started=NOW - 3600)],
        {},
        [],
        ["ux"],
        [],
        [],
        ["ux"],
        {},
    ),
    (
        "a spawn in progress: never released, however old",
        [],
        {"ux": ONE},
        [intent("ux", live=True, started=NOW - 86400)],
        {"ux": NOW - 86400},
        [],
        [],
        ["ux"],
        [],
        [],
        {},
    ),
    (
        "a spawn died after its define: its entry goes, nothing else",
        [guest("a", "ua", ONE)],
        {"ua": ONE},
        [intent("ua", live=False)],
        {},
        [],
        [],
        [],
        [],
        ["ua"],
        {},
    ),
    (
        "a spawn died before its claim: its entry goes",
        [],
        {},
        [intent("ux", live=False)],
        {},
        [],
        [],
        [],
        [],
        ["ux"],
        {},
    ),
    (
        "unknown origin, first seen now: kept, remembered",
        [],
        {"ux": ONE},
        [],
        {},
        [],
        [],
        ["ux"],
        [],
        [],
        {"ux": NOW},
    ),
    (
        "unknown origin, inside the grace: kept",
        [],
        {"ux": ONE},
        [],
        {"ux": NOW - GRACE + 1},
        [],
        [],
        ["ux"],
        [],
        [],
        {"ux": NOW - GRACE + 1},
    ),
    (
        "unknown origin, grace over: released, forgotten",
        [],
        {"ux": ONE},
        [],
        {"ux": NOW - GRACE, "gone": NOW - 5},
        [],
        ["ux"],
        [],
        [],
        [],
        {},
    ),
    (
        "an unreadable file with that uuid: kept even if dead",
        [],
        {"ux": ONE, "uy": ONE},
        [intent("ux", live=False), intent("uy", live=False)],
        {},
        [Broken("b", "/s/b.xml", "truncated", "ux")],
        ["uy"],
        ["ux"],
        [],
        ["uy"],
        {},
    ),
    (
        "an unreadable file without a uuid: every orphan kept",
        [],
        {"ux": ONE, "uy": ONE},
        [intent("ux", live=False)],
        {"uy": NOW - 86400},
        [Broken("b", "/s/b.xml", "truncated", None)],
        [],
        ["ux", "uy"],
        [],
        [],
        {},
    ),
    (
        "a guest without allocation: claimed again",
        [guest("a", "ua", ONE), guest("b", "ub", ONE)],
        {"ub": ONE},
        [],
        {},
        [],
        [],
        [],
        ["a"],
        [],
        {},
    ),
    (
        "a guest without allocation, spawn entry live: not yet",
        [guest("a", "ua", ONE)],
        {},
        [intent("ua", live=True)],
        {},
        [],
        [],
        [],
        [],
        [],
        {},
    ),
    (
        "a guest whose allocation is unknown (removed slice): left",
        [guest("a", "ua", {})],
        {},
        [],
        {},
        [],
        [],
        [],
        [],
        [],
        {},
    ),
    (
        "a domain we did not make: nothing to claim",
        [guest("other")],
        {},
        [],
        {},
        [],
        [],
        [],
        [],
        [],
        {},
    ),
]


@pytest.mark.parametrize(
    "guests, allocations, intents, seen, unreadable, released, kept, "
    "reclaimed, forgotten, seen_after",
    [c[1:] for c in REPAIRS],
    ids=[c[0] for c in REPAIRS],
)
def test_repairs(
    guests,
    allocations,
    intents,
    seen,
    unreadable,
    released,
    kept,
    reclaimed,
    forgotten,
    seen_after,
):
    plan = plan_repairs(
        guests, allocations, intents, seen, NOW, GRACE, unreadable
    )
    assert [c for c, _ in plan.release] == released
    assert [c for c, _ in plan.keep] == kept
    live = {i.consumer for i in intents if i.live}
    assert plan.busy == {c for c in kept if c in live}
    assert [g.name for g in plan.reclaim] == reclaimed
    assert list(plan.forget) == forgotten
    assert plan.seen == seen_after
    # every decision says why, in words an operator can act on
    assert all(why for _, why in plan.release + plan.keep)


def test_repair_reasons_name_the_operation_and_the_file():
    plan = plan_repairs(
        [],
        {"ux": ONE, "uy": ONE, "uz": ONE},
        [intent("ux", live=True), intent("uy", live=False, op="destroy")],
        {},
        NOW,
        GRACE,
        [Broken("b", "/s/b.xml", "truncated", "uz")],
    )
    why = dict(plan.keep + plan.release)
    assert why["ux"] == (
        "a spawn of g is in progress (process 42, started 5 s ago)"
    )
    assert why["uy"] == (
        "the destroy of g started 5 s ago died before it finished (its "
        "process is gone)"
    )
    assert why["uz"] == (
        "it may belong to guest b, whose domain file /s/b.xml is unreadable"
    )


def test_an_unreadable_file_is_a_discrepancy_saying_how_to_repair():
    (found,) = unreadable_problems(
        [Broken("b", "/s/b.xml", "expected '>'", "ub")]
    )
    assert (found.code, found.instance_uuid, found.name) == (
        "host.domain-unreadable",
        "ub",
        "b",
    )
    assert "/s/b.xml" in found.message and "expected '>'" in found.message
    assert "mv /s/b.xml /s/b.xml.broken" in found.message
    assert "nova-slices release ub" in found.message


# -- holdings ------------------------------------------------------------


SLICE_DOMAIN = """
<domain type='kvm'>
  <name>s</name>
  <memory unit='GiB'>96</memory>
  <memoryBacking><hugepages>
    <page size='1' unit='G' nodeset='0-1'/>
  </hugepages></memoryBacking>
  <vcpu placement='static'>4</vcpu>
  <cputune>
    <vcpupin vcpu='0' cpuset='1'/>
    <vcpupin vcpu='1' cpuset='65'/>
    <vcpupin vcpu='2' cpuset='17'/>
    <vcpupin vcpu='3' cpuset='81'/>
    <emulatorpin cpuset='0,64'/>
  </cputune>
  <numatune>
    <memory mode='strict' nodeset='0-1'/>
    <memnode cellid='0' mode='strict' nodeset='0'/>
    <memnode cellid='1' mode='strict' nodeset='1'/>
  </numatune>
  <cpu><numa>
    <cell id='0' cpus='0-1' memory='32' unit='GiB'/>
    <cell id='1' cpus='2-3' memory='64' unit='GiB'/>
  </numa></cpu>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x17' slot='0x00'
        function='0x0'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
      <source><address uuid='AB6C1E7A-0000-4000-8000-000000000001'/></source>
    </hostdev>
  </devices>
</domain>
"""


def test_slice_holdings_are_what_the_xml_says():
    held = domain_holdings(etree.fromstring(SLICE_DOMAIN))
    assert held == Holdings(
        frozenset({1, 65, 17, 81}),
        frozenset({0, 64}),
        frozenset({"0000:17:00.0"}),
        frozenset({"ab6c1e7a-0000-4000-8000-000000000001"}),
        (((0, G1), 32), ((1, G1), 64)),
    )


def test_pages_of_a_guest_without_numa_cells_go_to_its_one_node():
    xml = """<domain><memory unit='KiB'>4194304</memory>
      <memoryBacking><hugepages><page size='2048'/></hugepages></memoryBacking>
      <numatune><memory nodeset='3'/></numatune></domain>"""
    assert domain_holdings(etree.fromstring(xml)).pages == (((3, 2048), 2048),)
    spread = xml.replace("nodeset='3'", "nodeset='2-3'")
    assert domain_holdings(etree.fromstring(spread)).pages == ()


def test_dynamic_holdings_come_from_the_record():
    """A mixed guest: its pinned vCPUs and 1G pages are held; its shared
    vCPU floats over CPUs it does not hold, though the XML pins it there."""
    request = build_request(
        4,
        4096,
        {
            "hw:cpu_policy": "mixed",
            "hw:cpu_dedicated_mask": "^0",
            "hw:mem_page_size": "1GB",
        },
    )
    placement = fit(TOPOLOGY, request, None, RESTRICTIONS)
    dom = guest_domain(
        GuestDomain("m", "u-m", "/d", pci=("0000:3b:00.2",)),
        request,
        placement,
        TOPOLOGY,
        RESTRICTIONS,
    )
    (cell,) = placement.cells
    record = metadata.GuestRecord(
        "m", "u-m", None, None, cells=placement.cells, flavor=(4, 4096, 1)
    )
    from_xml = domain_holdings(dom)
    held = record_holdings(record, TOPOLOGY, from_xml)
    pinned = frozenset(p for _, p in cell.cpu_pinning)
    assert len(pinned) == 3
    assert held.pinned_cpus == pinned
    assert from_xml.pinned_cpus > pinned  # the shared vCPU's pin set
    assert held.emulator_cpus == frozenset()
    assert held.pci == frozenset({"0000:3b:00.2"})
    assert held.pages == (((cell.host_cell, G1), 4),)


# -- one rule for the CPU pools --------------------------------------------


ALL = frozenset(range(8))


@pytest.mark.parametrize(
    "dedicated, shared, pools",
    [
        (None, None, (ALL, ALL)),
        (frozenset({2, 3}), None, (frozenset({2, 3}), frozenset())),
        (None, frozenset({0, 1}), (frozenset(), frozenset({0, 1}))),
        (
            frozenset({2, 3}),
            frozenset({0, 1}),
            (frozenset({2, 3}), frozenset({0, 1})),
        ),
    ],
    ids=["neither set", "only dedicated", "only shared", "both"],
)
def test_cpu_pools_follow_nova(dedicated, shared, pools):
    assert cpu_pools(ALL, HostRestrictions(dedicated, shared)) == pools


def test_only_dedicated_set_means_no_shared_cpu_anywhere():
    """The inventory, the fitter and the XML agree: no VCPU inventory, a
    floating guest does not fit, and the XML refuses to float it."""
    only_dedicated = HostRestrictions(dedicated_cpus=TOPOLOGY.cpu_ids)
    inventory = root_inventories(TOPOLOGY, only_dedicated, Ratios(), 10)
    assert "VCPU" not in inventory
    assert inventory["PCPU"].total == len(TOPOLOGY.cpu_ids)
    one_cell = build_request(2, 1024, {"hw:numa_nodes": "1"})
    rejection = fit(TOPOLOGY, one_cell, None, only_dedicated)
    assert "numa.not-enough-shared-cpus" in {r.code for r in rejection.reasons}
    floating = build_request(2, 1024)
    placement = fit(TOPOLOGY, floating, None, only_dedicated)
    with pytest.raises(GuestError) as exc:
        guest_domain(
            GuestDomain("f", "u-f", "/d"),
            floating,
            placement,
            TOPOLOGY,
            only_dedicated,
        )
    assert exc.value.code == "guest.no-shared-cpus"
    assert exc.value.key == "[compute] cpu_shared_set"
