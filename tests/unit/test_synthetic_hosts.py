"""The generated hosts of tests/hostgen.py are valid libvirt capabilities
and parse into the topology each imitates.

The expectations are written out by hand from each builder's docstring,
not computed with the generator's own arithmetic.
"""

import dataclasses

import pytest

from nova_slices.host.capabilities import parse_capabilities
from nova_slices.virt.schema import validate_capabilities_xml
from tests import hostgen

K4, K64, M2, M512, G1 = 4, 64, 2048, 512 * 1024, 1024 * 1024
GIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Expect:
    sockets: list
    cells: int
    #: CPU-bearing cell id -> (socket, number of CPUs)
    cpu_cells: dict
    threads_per_core: int
    #: memory-only cell id -> socket of the nearest CPU-bearing cell
    memory_only: dict
    #: (cell, cell) -> distance, a sample of the matrix
    distances: dict
    #: cell id -> {page size KiB: count}; "memory_gib" checked alongside
    pools: dict
    memory_gib: dict
    #: CPU id -> its thread siblings
    siblings: dict


EXPECT = {
    "intel_snc_2s": Expect(
        sockets=[0, 1],
        cells=4,
        cpu_cells={0: (0, 56), 1: (0, 56), 2: (1, 56), 3: (1, 56)},
        threads_per_core=2,
        memory_only={},
        distances={(0, 0): 10, (0, 1): 12, (1, 2): 21, (3, 2): 12},
        pools={0: {K4: 13631488, M2: 2048, G1: 200}},
        memory_gib={0: 256, 3: 256},
        siblings={0: {0, 112}, 27: {27, 139}, 28: {28, 140}, 167: {55, 167}},
    ),
    "amd_l3_as_numa_2s": Expect(
        sockets=[0, 1],
        cells=16,
        cpu_cells={
            **{c: (0, 16) for c in range(8)},
            **{c: (1, 16) for c in range(8, 16)},
        },
        threads_per_core=2,
        memory_only={},
        distances={(0, 7): 11, (0, 8): 32, (15, 8): 11, (9, 1): 32},
        pools={5: {K4: 4194304, G1: 48}},
        memory_gib={5: 64},
        siblings={0: {0, 128}, 64: {64, 192}, 255: {127, 255}},
    ),
    "gb200_34": Expect(
        sockets=[0, 1],
        cells=34,
        cpu_cells={0: (0, 72), 1: (1, 72)},
        threads_per_core=1,
        memory_only={
            **{c: 0 for c in range(2, 18)},
            **{c: 1 for c in range(18, 34)},
        },
        distances={
            (0, 1): 40,
            (2, 0): 80,
            (2, 1): 120,
            (18, 1): 80,
            (18, 0): 120,
            (2, 3): 120,
            (33, 33): 10,
        },
        pools={0: {K64: 5636096, M2: 4096, M512: 256}, 3: {K64: 0}},
        memory_gib={0: 480, 2: 184, 3: 0, 10: 184, 18: 184, 26: 184},
        siblings={0: {0}, 71: {71}, 72: {72}, 143: {143}},
    ),
    "hbm_flat": Expect(
        sockets=[0, 1],
        cells=4,
        cpu_cells={0: (0, 112), 1: (1, 112)},
        threads_per_core=2,
        memory_only={2: 0, 3: 1},
        distances={(0, 1): 21, (0, 2): 13, (0, 3): 23, (3, 1): 13},
        pools={0: {K4: 67108864, G1: 256}, 3: {K4: 8388608, G1: 32}},
        memory_gib={0: 512, 1: 512, 2: 64, 3: 64},
        siblings={0: {0, 112}, 55: {55, 167}, 56: {56, 168}},
    ),
    "two_socket_512_threads": Expect(
        sockets=[0, 1],
        cells=8,
        cpu_cells={c: (c // 4, 64) for c in range(8)},
        threads_per_core=2,
        memory_only={},
        distances={(0, 3): 12, (0, 4): 32, (7, 4): 12},
        pools={7: {K4: 8388608, G1: 160}},
        memory_gib={7: 192},
        siblings={0: {0, 256}, 255: {255, 511}, 128: {128, 384}},
    ),
    "laptop": Expect(
        sockets=[0],
        cells=1,
        cpu_cells={0: (0, 16)},
        threads_per_core=2,
        memory_only={},
        distances={(0, 0): 10},
        pools={0: {K4: 8388608}},
        memory_gib={0: 32},
        siblings={0: {0, 8}, 15: {7, 15}},
    ),
}


@pytest.fixture(scope="module", params=sorted(EXPECT))
def host(request):
    name = request.param
    xml = hostgen.BUILDERS[name]()
    return name, xml, parse_capabilities(xml), EXPECT[name]


def test_every_builder_has_expectations():
    assert sorted(hostgen.BUILDERS) == sorted(EXPECT)


def test_validates_against_libvirt_schema(host):
    _, xml, _, _ = host
    validate_capabilities_xml(xml)


def test_sockets_and_cells(host):
    _, _, topo, want = host
    assert topo.sockets == want.sockets
    assert [c.id for c in topo.cells] == list(range(want.cells))


def test_cpu_cells(host):
    _, _, topo, want = host
    got = {c.id: (c.socket, len(c.cpus)) for c in topo.cells if c.cpus}
    assert got == want.cpu_cells
    # Every CPU id appears once, numbered 0..n-1 like Linux.
    total = sum(n for _, n in want.cpu_cells.values())
    assert topo.cpu_ids == frozenset(range(total))


def test_siblings(host):
    _, _, topo, want = host
    cpus = topo.cpus
    for cpu_id, siblings in want.siblings.items():
        assert cpus[cpu_id].siblings == siblings, cpu_id
    for cell in topo.cells:
        for group in cell.siblings():
            assert len(group) == want.threads_per_core
            # siblings share socket and core, and sit in one cell
            assert len({(cpus[i].socket, cpus[i].core) for i in group}) == 1
            assert set(group) <= cell.cpu_ids


def test_memory_only_cells(host):
    _, _, topo, want = host
    got = {c.id: c.socket for c in topo.cells if c.memory_only}
    assert got == want.memory_only


def test_distances(host):
    _, _, topo, want = host
    for (a, b), value in want.distances.items():
        assert topo.cell(a).distance(b) == value, (a, b)
    for cell in topo.cells:
        # full, symmetric matrix
        assert [o for o, _ in cell.distances] == list(range(want.cells))
        for other, value in cell.distances:
            assert topo.cell(other).distance(cell.id) == value


def test_page_pools_and_memory(host):
    _, _, topo, want = host
    for cell_id, pools in want.pools.items():
        cell = topo.cell(cell_id)
        assert {p.size_kb: p.total for p in cell.pages} == pools
        assert sum(p.total_kb for p in cell.pages) == cell.memory_kb
    for cell_id, gib in want.memory_gib.items():
        assert topo.cell(cell_id).memory_kb == gib * GIB


def test_cluster_ids_are_optional_and_parse():
    xml = hostgen.capabilities_xml(
        hostgen.HostSpec(cores_per_cell=8, cores_per_cluster=4)
    )
    topo = parse_capabilities(xml)
    cpus = topo.cpus
    assert [cpus[i].cluster for i in (0, 3, 4, 7, 8, 12)] == [0, 0, 1, 1, 0, 1]
    assert "cluster_id" not in hostgen.laptop()


def test_dies():
    topo = parse_capabilities(hostgen.amd_l3_as_numa_2s())
    # one CCD (die) per cell, numbered within the socket
    assert {c.die for c in topo.cell(3).cpus} == {3}
    assert {c.die for c in topo.cell(11).cpus} == {3}
