"""The compute claim's fit for pinned guests, on Nova's own objects.

``fit_pinned`` must give exactly what Nova's claim would store in
``instance.numa_topology`` (cells with host ids, CPU pinning, page size),
but on the pinned host cells; and the claim wrapper must leave every
claim that has no pin, or whose driver is not ours, to Nova.
"""

import types

from nova import objects
from nova.compute import claims as nova_claims
from nova.virt import hardware

from nova_slices.nova import claims, numa
from tests.unit.test_nova_numa_filter import (
    DEDICATED,
    GIB,
    MIXED,
    nova_host,
    shared_host,
)
from tests.unit.test_nova_numa_filter import nova_flavor as flavor

objects.register_all()


IMAGE = objects.ImageMeta.from_dict({"properties": {}})
NO_PCI = objects.InstancePCIRequests(requests=[])


def fit_pinned(host, vcpus, memory_mb, specs, limits=None):
    f = flavor(vcpus, memory_mb, specs)
    request = numa.request_of(f, IMAGE)
    return claims.fit_pinned(
        host,
        hardware.numa_get_constraints(f, IMAGE),
        request,
        limits,
        NO_PCI,
        None,
    )


def test_a_pin_obeys_the_claims_oversubscription_limits():
    """The claim's limits (the scheduler's ratios) bind our choice as
    they bind Nova's: a mixed guest pinned to a cell whose shared CPUs
    are all used fits without limits and is refused with them."""
    vcpus, memory_mb, specs = MIXED
    pinned = {**specs, "hw:numa_node.0": "0"}
    host = shared_host(cpu_usage=4)
    got = fit_pinned(host, vcpus, memory_mb, pinned)
    assert [c.id for c in got.cells] == [0]
    limits = objects.NUMATopologyLimits(
        cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0
    )
    why = fit_pinned(host, vcpus, memory_mb, pinned, limits)
    assert isinstance(why, str)
    assert "[numa.cpu-oversubscribed]" in why


def test_cells_land_on_their_pins_in_guest_order():
    got = fit_pinned(
        nova_host(),
        4,
        2048,
        {
            **DEDICATED,
            "hw:numa_nodes": "2",
            "hw:numa_node.0": "1",
            "hw:numa_node.1": "0",
        },
    )
    assert [c.id for c in got.cells] == [1, 0]
    assert set(got.cells[0].cpu_pinning.values()) <= set(range(8, 16))
    assert set(got.cells[1].cpu_pinning.values()) <= set(range(8))
    assert sorted(got.cells[0].cpu_pinning) == [0, 1]


def test_a_pin_avoids_the_pinned_cpus_and_uses_huge_pages():
    host = nova_host(pinned={1: range(8, 12)})
    got = fit_pinned(
        host,
        2,
        2 * GIB,
        {**DEDICATED, "hw:mem_page_size": "1GB", "hw:numa_node.0": "1"},
    )
    assert [c.id for c in got.cells] == [1]
    assert set(got.cells[0].cpu_pinning.values()) <= set(range(12, 16))
    assert got.cells[0].pagesize == 1024 * 1024


def test_a_full_pinned_cell_is_refused_with_the_pin_and_the_code():
    host = nova_host(pinned={1: range(8, 14)})
    why = fit_pinned(host, 4, 1024, {**DEDICATED, "hw:numa_node.0": "1"})
    assert isinstance(why, str)
    assert "pinned by hw:numa_node.0=1" in why
    assert "[numa.not-enough-pcpus]" in why


def test_a_pin_to_a_missing_cell_is_refused():
    why = fit_pinned(
        nova_host(), 2, 1024, {**DEDICATED, "hw:numa_node.0": "7"}
    )
    assert "[numa.pinned-cell-missing]" in why


def fake_claim(specs, driver):
    """A Claim as the resource tracker builds one, short of its test."""
    claim = object.__new__(nova_claims.Claim)
    f = flavor(2, 1024, specs)
    claim.instance = types.SimpleNamespace(
        flavor=f,
        image_meta=IMAGE,
        numa_topology=hardware.numa_get_constraints(f, IMAGE),
    )
    claim.tracker = types.SimpleNamespace(
        driver=driver, pci_tracker=types.SimpleNamespace(stats=None)
    )
    claim._pci_requests = NO_PCI
    claim.claimed_numa_topology = None
    return claim


def compute_node():
    return objects.ComputeNode(numa_topology=nova_host()._to_json())


OURS = types.SimpleNamespace(honours_numa_pins=True)


def test_the_wrapper_leaves_claims_without_pins_to_nova(monkeypatch):
    calls = []
    monkeypatch.setattr(
        claims, "_nova_test_numa_topology", lambda *a: calls.append(a)
    )
    plain = fake_claim({**DEDICATED}, OURS)
    assert claims.test_numa_topology(plain, compute_node(), None) is None
    other_driver = fake_claim({**DEDICATED, "hw:numa_node.0": "1"}, object())
    claims.test_numa_topology(other_driver, compute_node(), None)
    assert [a[0] for a in calls] == [plain, other_driver]


def test_the_wrapper_claims_the_pinned_cells(monkeypatch):
    monkeypatch.setattr(claims, "_nova_test_numa_topology", None)
    claim = fake_claim({**DEDICATED, "hw:numa_node.0": "1"}, OURS)
    assert claims.test_numa_topology(claim, compute_node(), None) is None
    assert [c.id for c in claim.claimed_numa_topology.cells] == [1]


def test_pins_alone_give_a_one_cell_guest(monkeypatch):
    """Nova builds no topology for a flavor with only a pin and shared
    CPUs; the claim builds the one-cell guest the core sees."""
    monkeypatch.setattr(claims, "_nova_test_numa_topology", None)
    host = nova_host()
    host.cells[1].cpuset = set(range(8, 16))
    node = objects.ComputeNode(numa_topology=host._to_json())
    claim = fake_claim({"hw:numa_node.0": "1"}, OURS)
    assert claim.instance.numa_topology is None
    assert claims.test_numa_topology(claim, node, None) is None
    assert [c.id for c in claim.claimed_numa_topology.cells] == [1]
    assert claim.claimed_numa_topology.cells[0].cpu_pinning is None


def test_install_is_idempotent_and_keeps_novas_method(monkeypatch):
    original = nova_claims.Claim._test_numa_topology
    # both restored when the test ends
    monkeypatch.setattr(nova_claims.Claim, "_test_numa_topology", original)
    monkeypatch.setattr(claims, "_nova_test_numa_topology", None)
    claims.install()
    claims.install()
    assert nova_claims.Claim._test_numa_topology is claims.test_numa_topology
    assert claims._nova_test_numa_topology is original
