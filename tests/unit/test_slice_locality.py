"""A slice's cells from its domain, and how near a device is to it."""

import os

import pytest
from lxml import etree

from nova_slices import data
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.topology import Cell, Cpu, HostTopology
from nova_slices.slices.locality import (
    DeviceLocality,
    DeviceSite,
    SliceLocality,
    nearness,
    of_cells,
    slice_locality,
    with_bound,
)

with open(os.path.join(data.host_bundle(), "capabilities.xml")) as f:
    #: the shipped gpu8-2s: cells 0-1 on socket 0, 2-3 on socket 1
    BUNDLE = parse_capabilities(f.read())


def domain(pins=(), memory=None, memnodes=()):
    pinned = "".join(
        f"<vcpupin vcpu='{i}' cpuset='{c}'/>" for i, c in enumerate(pins)
    )
    tune = ""
    if memory or memnodes:
        tune = (
            "<numatune>"
            + (f"<memory mode='strict' nodeset='{memory}'/>" if memory else "")
            + "".join(
                f"<memnode cellid='{i}' mode='strict' nodeset='{n}'/>"
                for i, n in enumerate(memnodes)
            )
            + "</numatune>"
        )
    return etree.fromstring(
        f"<domain type='kvm'><name>g</name><cputune>{pinned}"
        f"<emulatorpin cpuset='0'/></cputune>{tune}</domain>"
    )


def cpu_of(cell):
    return min(BUNDLE.cell(cell).cpu_ids)


# (domain, cells, sockets)
SLICES = [
    (domain([cpu_of(1), cpu_of(1) + 1], "1", ["1"]), {1}, {0}),
    (domain([cpu_of(0), cpu_of(1)], "0,1", ["0", "1"]), {0, 1}, {0}),
    (domain([cpu_of(c) for c in range(4)], "0-3"), {0, 1, 2, 3}, {0, 1}),
    # no pins: the memory binding says where the guest is
    (domain(memory="2"), {2}, {1}),
    # vCPUs on cell 1, memory on cell 2: both are the slice's
    (domain([cpu_of(1)], "2", ["2"]), {1, 2}, {0, 1}),
    # neither: no cell (the emulator pin is not the guest's)
    (domain(), set(), set()),
    # a node the host lacks is left out (the host check refuses it)
    (domain([cpu_of(3)], "3,9"), {3}, {1}),
]


@pytest.mark.parametrize("dom, cells, sockets", SLICES)
def test_cells_and_sockets_of_a_domain(dom, cells, sockets):
    assert slice_locality(dom, BUNDLE) == SliceLocality(
        frozenset(cells), frozenset(sockets)
    )


def test_partial_host_has_no_slice_socket():
    cells = tuple(
        Cell(i, (Cpu(i, socket=s),), 1 << 20, (), socket=s)
        for i, s in enumerate((0, 0, 1, None))
    )
    topology = HostTopology(cells)
    got = slice_locality(domain([1]), topology)
    assert got == SliceLocality(frozenset({1}), None)


# -- ranking, policy, explanation ------------------------------------------

S1 = SliceLocality(frozenset({1}), frozenset({0}))
SITES = {
    "nic-1": DeviceSite("0000:5e:00.0", 1, 0),
    "nic-0": DeviceSite("0000:3b:00.0", 0, 0),
    "nic-2": DeviceSite("0000:86:00.0", 2, 1),
    "nic-x": DeviceSite("0000:99:00.0", None, None),
}


def rule(policy=None, where=S1, unknown=()):
    return DeviceLocality({"1_3": where}, SITES, unknown, policy)


# (provider, tier, policies that take it)
TIERS = [
    ("nic-1", "cell", {None, "preferred", "required", "legacy", "socket"}),
    ("nic-0", "socket", {None, "preferred", "socket"}),
    ("nic-2", "elsewhere", {None, "preferred"}),
    ("nic-x", "elsewhere", {None, "preferred", "legacy"}),
]


@pytest.mark.parametrize("rp, tier, takers", TIERS)
def test_tier_and_policy_of_each_device(rp, tier, takers):
    assert rule().tier("1_3", rp) == tier
    for policy in (None, "preferred", "required", "legacy", "socket"):
        allowed = rule(policy).allows("1_3", rp)
        assert allowed == (policy in takers), policy


def test_partial_host_socket_policy_takes_the_cell_only():
    where = SliceLocality(frozenset({1}), None)
    r = rule("socket", where, unknown=(3,))
    assert r.tier("1_3", "nic-0") == "elsewhere"
    assert [rp for rp in SITES if r.allows("1_3", rp)] == ["nic-1"]


def test_score_prefers_cell_then_socket_and_counts_units():
    r = rule()
    assert r.score("1_3", {"nic-1": {"CUSTOM_NIC_VF": 1}}) == 2
    assert r.score("1_3", {"nic-0": {"CUSTOM_NIC_VF": 1}}) == 1
    assert r.score("1_3", {"nic-2": {"CUSTOM_NIC_VF": 2}}) == 0
    assert r.score("1_3", {"nic-1": {"CUSTOM_NIC_VF": 2}, "root": {}}) == 4
    # refused outright under a policy, not ranked low
    assert rule("required").score("1_3", {"nic-0": {"VF": 1}}) is None


def explain(chosen, offered, policy=None, where=S1, unknown=()):
    got = rule(policy, where, unknown).explain(
        "1_3", {chosen: {"CUSTOM_NIC_VF": 1}}, offered
    )
    [device] = got["devices"]
    return got, device


def vf(*rps):
    return [{rp: {"CUSTOM_NIC_VF": 1}} for rp in rps]


def test_explanation_on_the_cell():
    got, device = explain("nic-1", vf("nic-1", "nic-0"))
    assert got["slice_cells"] == [1] and got["slice_sockets"] == [0]
    assert got["policy"] is None
    assert device == {
        "resource_class": "CUSTOM_NIC_VF",
        "amount": 1,
        "device": "0000:5e:00.0",
        "provider": "nic-1",
        "numa_node": 1,
        "socket": 0,
        "locality": "cell",
        "reason": "on the slice's cell 1",
    }


# (chosen, offered, reason)
REASONS = [
    ("nic-0", ("nic-0", "nic-2"), "on its socket 0, none free on cell 1"),
    ("nic-2", ("nic-2",), "elsewhere: none free on socket 0"),
    (
        "nic-x",
        ("nic-x",),
        "elsewhere (NUMA node unknown): none free on socket 0",
    ),
    # nearer was offered, but not in a candidate that could be taken
    (
        "nic-0",
        ("nic-0", "nic-1"),
        "on its socket 0, a device on its cell was free, but not together "
        "with the rest of the request",
    ),
]


@pytest.mark.parametrize("chosen, offered, reason", REASONS)
def test_explanation_says_why_not_nearer(chosen, offered, reason):
    _, device = explain(chosen, vf(*offered))
    assert device["reason"] == reason


def test_explanation_on_a_partial_host_and_without_cells():
    where = SliceLocality(frozenset({1}), None)
    got, device = explain("nic-0", vf("nic-0"), where=where, unknown=(3,))
    assert got["slice_sockets"] is None
    assert device["reason"] == (
        "elsewhere: none free on cell 1, and the host's socket data is "
        "partial (cell 3 without a socket)"
    )
    where = SliceLocality(frozenset(), frozenset())
    _, device = explain("nic-0", vf("nic-0"), where=where)
    assert device["reason"].startswith("elsewhere: the slice's template")


def test_bound_devices_are_added_per_provider():
    got, _ = explain("nic-1", vf("nic-1"))
    bound = with_bound(got, {"nic-1": ["0000:5e:00.2"]})
    assert bound["devices"][0]["bound"] == ["0000:5e:00.2"]
    assert "bound" not in got["devices"][0]  # a new value


# (policy, unknown cells, code)
REFUSALS = [
    ("required", (), "pci.no-device-on-cell"),
    ("legacy", (), "pci.no-device-on-cell"),
    ("socket", (), "pci.no-device-on-socket"),
    ("socket", (3,), "pci.socket-unknown"),
]


@pytest.mark.parametrize("policy, unknown, code", REFUSALS)
def test_refusal_names_the_policy_slices_and_devices(policy, unknown, code):
    r = rule(policy, unknown=unknown)
    err = r.refusal(
        "CUSTOM_SLICE_1_GPU_V1",
        [("1_3", {"nic-2": {"CUSTOM_NIC_VF": 1}, "nic-x": {"VGPU": 1}})],
    )
    assert (err.code, err.key, err.value, err.exit_status) == (
        code,
        "hw:pci_numa_affinity_policy",
        policy,
        1,
    )
    assert err.message.startswith(f"hw:pci_numa_affinity_policy={policy}:")
    assert "1_3 (cell 1)" in err.message
    assert "CUSTOM_NIC_VF free on cell 2" in err.message
    assert "VGPU free on devices of unknown NUMA node" in err.message
    if unknown:
        assert "host cell 3 has no socket" in err.message


def test_nearness_of_a_dynamic_guests_cells():
    where = of_cells([1], BUNDLE)
    assert where == S1
    assert nearness(where, SITES) == {"nic-1": 2, "nic-0": 1}
    # a guest on both sockets: every device with a known socket is near
    assert nearness(of_cells([1, 2], BUNDLE), SITES) == {
        "nic-1": 2,
        "nic-2": 2,
        "nic-0": 1,
    }
