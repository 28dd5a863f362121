"""NUMAFitFilter on Nova's own objects, beside NUMATopologyFilter.

The host is what Nova's scheduler holds (``objects.NUMATopology`` with
usage, ``PciDeviceStats``), the request a real ``RequestSpec`` built the
way the API builds it.  Both filters answer the same on requests Nova
understands; only NUMAFitFilter honours ``hw:numa_node.N``.
"""

import types

import pytest
from nova import objects
from nova.scheduler.filters import numa_topology_filter
from nova.virt import hardware

from nova_slices.nova import filters, numa

objects.register_all()

GIB = 1024


def nova_host(pinned=None, used_mb=None):
    """2 sockets x 1 cell, 4 cores x 2 threads a cell, 8 GiB and 4x1G."""
    pinned = pinned or {}
    used_mb = used_mb or {}
    cells = []
    for cell in range(2):
        cpus = set(range(8 * cell, 8 * cell + 8))
        cells.append(
            objects.NUMACell(
                id=cell,
                cpuset=set(),
                pcpuset=cpus,
                memory=8 * GIB,
                cpu_usage=0,
                memory_usage=used_mb.get(cell, 0),
                pinned_cpus=set(pinned.get(cell, ())),
                siblings=[
                    {8 * cell + 2 * i, 8 * cell + 2 * i + 1} for i in range(4)
                ],
                mempages=[
                    objects.NUMAPagesTopology(
                        size_kb=4, total=1024 * 1024, used=0, reserved=0
                    ),
                    objects.NUMAPagesTopology(
                        size_kb=1024 * 1024, total=4, used=0, reserved=1
                    ),
                ],
                network_metadata=objects.NetworkMetadata(
                    physnets=set(), tunneled=False
                ),
                socket=cell,
            )
        )
    return objects.NUMATopology(cells=cells)


def nova_flavor(vcpus, memory_mb, extra_specs):
    return objects.Flavor(
        vcpus=vcpus,
        memory_mb=memory_mb,
        extra_specs=dict(extra_specs),
        name="f",
        flavorid="f",
        root_gb=1,
        ephemeral_gb=0,
        swap=0,
    )


def spec(vcpus, memory_mb, extra_specs):
    flavor = nova_flavor(vcpus, memory_mb, extra_specs)
    image = objects.ImageMeta.from_dict({"properties": {}})
    return objects.RequestSpec(
        flavor=flavor,
        image=image,
        numa_topology=hardware.numa_get_constraints(flavor, image),
        pci_requests=objects.InstancePCIRequests(requests=[]),
        instance_uuid="00000000-0000-4000-8000-000000000001",
    )


def host_state(topology):
    return types.SimpleNamespace(
        host="h",
        nodename="h",
        uuid="00000000-0000-4000-8000-0000000000aa",
        numa_topology=topology,
        pci_stats=None,
        cpu_allocation_ratio=1.0,
        ram_allocation_ratio=1.0,
        limits={},
        allocation_candidates=[{"mappings": {}, "allocations": {}}],
    )


DEDICATED = {"hw:cpu_policy": "dedicated"}
CASES = [
    ("no NUMA request", nova_host(), (2, 1024, {}), True),
    # every CPU is dedicated (cpuset empty): nothing for floating vCPUs
    (
        "a shared NUMA cell",
        nova_host(),
        (2, 1024, {"hw:numa_nodes": "1"}),
        False,
    ),
    ("one dedicated cell", nova_host(), (4, 1024, DEDICATED), True),
    (
        "two cells",
        nova_host(),
        (8, 2048, {**DEDICATED, "hw:numa_nodes": "2"}),
        True,
    ),
    ("too many vCPUs for a cell", nova_host(), (9, 1024, DEDICATED), False),
    (
        "CPUs pinned away",
        nova_host(pinned={0: range(8), 1: range(8, 14)}),
        (4, 1024, DEDICATED),
        False,
    ),
    (
        "1G pages: 3 of 4 free (1 reserved)",
        nova_host(),
        (2, 3 * GIB, {**DEDICATED, "hw:mem_page_size": "1GB"}),
        True,
    ),
    (
        "1G pages: 4 wanted, 3 free",
        nova_host(),
        (2, 4 * GIB, {**DEDICATED, "hw:mem_page_size": "1GB"}),
        False,
    ),
    (
        "require threads on SMT",
        nova_host(),
        (4, 1024, {**DEDICATED, "hw:cpu_thread_policy": "require"}),
        True,
    ),
]


@pytest.mark.parametrize(
    "host, guest, fits", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decides_like_numa_topology_filter(host, guest, fits):
    ours = filters.NUMAFitFilter().host_passes(host_state(host), spec(*guest))
    novas = numa_topology_filter.NUMATopologyFilter().host_passes(
        host_state(host), spec(*guest)
    )
    assert ours is novas is fits


def test_one_filter_parses_each_request_once_and_never_mixes_them(
    monkeypatch,
):
    """Nova keeps one filter for every request: a request is parsed once
    for all its hosts, and the next request (another flavor or image
    object) gets its own answer, a refused one included."""
    parsed = []
    real = numa.request_of
    monkeypatch.setattr(
        numa,
        "request_of",
        lambda flavor, image: parsed.append(flavor) or real(flavor, image),
    )
    ours = filters.NUMAFitFilter()
    host = nova_host(pinned={1: range(8, 14)})
    fits = spec(4, 1024, {**DEDICATED, "hw:numa_node.0": "0"})
    assert all(ours.host_passes(host_state(host), fits) for _ in range(5))
    assert len(parsed) == 1
    # a new request: same values, new objects, another answer
    too_big = spec(4, 1024, {**DEDICATED, "hw:numa_node.0": "1"})
    assert not ours.host_passes(host_state(host), too_big)
    bad = spec(4, 1024, {**DEDICATED, "hw:numa_node.0": "7"})
    assert not any(ours.host_passes(host_state(host), bad) for _ in range(3))
    assert ours.host_passes(host_state(host), fits)
    # the spec's image replaced: parsed again
    fits.image = objects.ImageMeta.from_dict({"properties": {}})
    assert ours.host_passes(host_state(host), fits)
    assert len(parsed) == 5


def test_sets_the_limits_the_compute_claims_with():
    state = host_state(nova_host())
    assert filters.NUMAFitFilter().host_passes(state, spec(4, 1024, DEDICATED))
    limits = state.limits["numa_topology"]
    assert (limits.cpu_allocation_ratio, limits.ram_allocation_ratio) == (
        1.0,
        1.0,
    )


def test_honours_an_explicit_host_cell():
    """Cell 1 has 2 free CPUs: a 4-vCPU guest pinned there does not fit,
    though cell 0 is free (Nova's filter does not know the key)."""
    host = nova_host(pinned={1: range(8, 14)})
    pinned_to_1 = spec(4, 1024, {**DEDICATED, "hw:numa_node.0": "1"})
    pinned_to_0 = spec(4, 1024, {**DEDICATED, "hw:numa_node.0": "0"})
    assert not filters.NUMAFitFilter().host_passes(
        host_state(host), pinned_to_1
    )
    assert filters.NUMAFitFilter().host_passes(host_state(host), pinned_to_0)
    assert numa_topology_filter.NUMATopologyFilter().host_passes(
        host_state(host), pinned_to_1
    )


def test_host_model_reads_usage_sets_and_reservations():
    host = nova_host(pinned={0: {1, 2}}, used_mb={0: 512})
    host.cells[1].cpuset = {15}
    host.cells[1].pcpuset = set(range(8, 15))
    topology, usage, restrictions = numa.host_model(host)
    assert [c.id for c in topology.cells] == [0, 1]
    assert topology.cell(0).memory_mb == 8 * GIB
    assert topology.cell(0).pool(1024 * 1024).total == 4
    assert topology.cpus[3].siblings == frozenset({2, 3})
    assert topology.socket_of_cell(1) == 1
    assert usage.cell(0).pinned_cpus == {1, 2}
    assert usage.cell(0).memory_mb == 512
    assert restrictions.shared_cpus == {15}
    assert restrictions.dedicated_cpus == set(range(15)) - set()
    assert restrictions.reserved(0, 1024 * 1024) == 1


def test_asks_socket_policy_reads_every_pci_request():
    def with_requests(*policies):
        s = spec(2, 1024, DEDICATED)
        s.pci_requests = objects.InstancePCIRequests(
            requests=[
                objects.InstancePCIRequest(count=1, spec=[{}], **policy)
                for policy in policies
            ]
        )
        return s

    assert not filters.asks_socket_policy(spec(2, 1024, DEDICATED))
    assert not filters.asks_socket_policy(with_requests({}))
    assert not filters.asks_socket_policy(
        with_requests({"numa_policy": "required"})
    )
    assert filters.asks_socket_policy(
        with_requests({"numa_policy": "legacy"}, {"numa_policy": "socket"})
    )


def shared_host(cpu_usage=0, memory_usage=0):
    """One cell: CPUs 0-3 shared, 4-7 dedicated, 32 GiB (16 GiB of 4 KiB
    pages, 16 GiB of 2 MiB pages), with the given shared usage."""
    cell = objects.NUMACell(
        id=0,
        cpuset={0, 1, 2, 3},
        pcpuset={4, 5, 6, 7},
        memory=32 * GIB,
        cpu_usage=cpu_usage,
        memory_usage=memory_usage,
        pinned_cpus=set(),
        siblings=[{i} for i in range(8)],
        mempages=[
            objects.NUMAPagesTopology(
                size_kb=4, total=16 * GIB * 256, used=0, reserved=0
            ),
            objects.NUMAPagesTopology(
                size_kb=2048, total=16 * GIB // 2, used=0, reserved=0
            ),
        ],
        network_metadata=objects.NetworkMetadata(
            physnets=set(), tunneled=False
        ),
        socket=0,
    )
    return objects.NUMATopology(cells=[cell])


HUGEPAGES = (2, 4 * GIB, {"hw:mem_page_size": "2048"})
MIXED = (
    4,
    4 * GIB,
    {"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "0-1"},
)
LIMIT_CASES = [
    ("hugepages, idle", shared_host(), HUGEPAGES, 1.0, True),
    ("mixed, idle", shared_host(), MIXED, 1.0, True),
    # the benchmark's case: every shared CPU used at ratio 1.0
    (
        "hugepages, 4 of 4 CPUs",
        shared_host(cpu_usage=4),
        HUGEPAGES,
        1.0,
        False,
    ),
    ("mixed, 4 of 4 CPUs", shared_host(cpu_usage=4), MIXED, 1.0, False),
    ("mixed, ratio 2", shared_host(cpu_usage=4), MIXED, 2.0, True),
    (
        "hugepages, 30000 of 32768 MB",
        shared_host(memory_usage=30000),
        HUGEPAGES,
        1.0,
        False,
    ),
    (
        "mixed, 30000 of 32768 MB",
        shared_host(memory_usage=30000),
        MIXED,
        1.0,
        False,
    ),
    (
        "dedicated, 4 of 4 shared CPUs",
        shared_host(cpu_usage=4, memory_usage=30000),
        (2, 1024, DEDICATED),
        1.0,
        True,
    ),
]


@pytest.mark.parametrize(
    "host, guest, ratio, fits",
    [c[1:] for c in LIMIT_CASES],
    ids=[c[0] for c in LIMIT_CASES],
)
def test_checks_the_hosts_allocation_ratios_like_nova(
    host, guest, ratio, fits
):
    """Nova's filter refuses a shared, hugepage or mixed guest a cell
    whose shared CPUs or memory are used up at the host's ratios (the
    1000-host benchmark's disagreement); ours refuses it too."""

    def state():
        s = host_state(host)
        s.cpu_allocation_ratio = s.ram_allocation_ratio = ratio
        return s

    ours = filters.NUMAFitFilter().host_passes(state(), spec(*guest))
    novas = numa_topology_filter.NUMATopologyFilter().host_passes(
        state(), spec(*guest)
    )
    assert ours is novas is fits
