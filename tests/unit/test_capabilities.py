"""Capabilities XML -> host model, over every libvirt sample, by hand."""

import os

import pytest

from nova_slices import data
from nova_slices.errors import HostError
from nova_slices.host.capabilities import parse_capabilities

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "libvirt-samples")
K4, M2, G1 = 4, 2048, 1048576


def load(name):
    with open(os.path.join(DATA, name)) as f:
        return parse_capabilities(f.read())


def summary(topo):
    """(id, socket, cpus, memory_mb, pages, memory_only) per cell."""
    return [
        (
            c.id,
            c.socket,
            sorted(c.cpu_ids),
            c.memory_mb,
            [(p.size_kb, p.total) for p in c.pages],
            c.memory_only,
        )
        for c in topo.cells
    ]


def pools(n4, n2, n1):
    return [(K4, n4), (M2, n2), (G1, n1)]


# Written out by hand from the XML files in tests/data/libvirt-samples.
SAMPLES = {
    "vircaps-x86_64-basic.xml": dict(
        sockets=[0, 1, 2, 3],
        cells=[
            (0, 0, [0, 1, 2, 3], 1024, pools(2048, 4096, 6144), False),
            (1, 1, [4, 5, 6, 7], 2048, pools(4096, 6144, 8192), False),
            (2, 2, [8, 9, 10, 11], 3072, pools(6144, 8192, 10240), False),
            (3, 3, [12, 13, 14, 15], 4096, pools(8192, 10240, 12288), False),
        ],
        siblings={0: [[0], [1], [2], [3]]},
        distances={},
    ),
    "vircaps-x86_64-basic-dies.xml": dict(
        sockets=[0, 1],
        # one cell whose CPUs span two sockets: its socket is unknown
        cells=[
            (0, None, list(range(12)), 1024, pools(2048, 4096, 6144), False)
        ],
        siblings={0: [[i] for i in range(12)]},
        distances={},
    ),
    "vircaps-x86_64-caches.xml": dict(
        sockets=[0],
        cells=[(0, 0, list(range(8)), 1024, pools(2048, 4096, 6144), False)],
        siblings={0: [[0, 4], [1, 5], [2, 6], [3, 7]]},
        distances={},
    ),
    "vircaps-x86_64-hmat.xml": dict(
        # 24 CPUs, each its own socket; cell 1 has memory and no CPUs
        sockets=list(range(24)),
        cells=[
            (0, None, list(range(24)), 1024, pools(2048, 4096, 6144), False),
            (1, None, [], 2048, pools(4096, 6144, 8192), True),
        ],
        siblings={0: [[i] for i in range(24)], 1: []},
        distances={},
    ),
    "caps-qemu-kvm.xml": dict(
        # CPUs without any topology attribute, a cell without <memory>
        sockets=[],
        cells=[(0, None, [0, 1, 2, 3], 0, [], False)],
        siblings={0: [[0], [1], [2], [3]]},
        distances={},
    ),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples(name):
    want = SAMPLES[name]
    topo = load(name)
    assert topo.sockets == want["sockets"]
    assert summary(topo) == want["cells"]
    for cell_id, groups in want["siblings"].items():
        assert [list(g) for g in topo.cell(cell_id).siblings()] == groups


def test_dies_and_cores_are_kept():
    cpu = load("vircaps-x86_64-basic-dies.xml").cpus[9]
    assert (cpu.socket, cpu.die, cpu.core) == (1, 1, 1)


def test_cpu_without_topology_keeps_none():
    cpu = load("caps-qemu-kvm.xml").cpus[2]
    assert (cpu.socket, cpu.die, cpu.core, cpu.siblings) == (
        None,
        None,
        None,
        frozenset({2}),
    )


def test_duplicate_cpu_ids_are_refused():
    # libvirt's own test data lists CPU 0 four times in cell 0
    with pytest.raises(HostError) as info:
        load("vircaps-basic-4-4-2G.xml")
    assert info.value.code == "host.duplicate-cpu"
    assert "CPU 0" in info.value.message


def test_shipped_bundle():
    path = os.path.join(data.host_bundle(), "capabilities.xml")
    with open(path) as f:
        topo = parse_capabilities(f.read())
    assert topo.sockets == [0, 1]
    assert [c.socket for c in topo.cells] == [0, 0, 1, 1]
    cell1 = topo.cell(1)
    assert sorted(cell1.cpu_ids) == list(range(16, 32)) + list(range(80, 96))
    assert cell1.siblings()[0] == (16, 80)
    assert cell1.distances == ((0, 12), (1, 10), (2, 21), (3, 21))
    assert cell1.pool(G1).total == 224


def _caps(cells_xml):
    return (
        "<capabilities><host><topology><cells num='9'>"
        + cells_xml
        + "</cells></topology></host></capabilities>"
    )


def _cell(
    cell_id, cpus="", memory="<memory unit='KiB'>1048576</memory>", extra=""
):
    return (
        f"<cell id='{cell_id}'>{memory}{extra}<cpus num='1'>{cpus}"
        "</cpus></cell>"
    )


MEMORY_ONLY = _caps(
    _cell(
        0,
        "<cpu id='0' socket_id='0' core_id='0' siblings='0'/>",
        extra="<distances><sibling id='0' value='10'/>"
        "<sibling id='1' value='21'/><sibling id='2' value='12'/>"
        "<sibling id='3' value='21'/></distances>",
    )
    + _cell(
        1,
        "<cpu id='1' socket_id='1' core_id='0' siblings='1'/>",
        extra="<distances><sibling id='0' value='21'/>"
        "<sibling id='1' value='10'/><sibling id='2' value='21'/>"
        "<sibling id='3' value='12'/></distances>",
    )
    + _cell(
        2,
        extra="<distances><sibling id='0' value='12'/>"
        "<sibling id='1' value='21'/><sibling id='2' value='10'/>"
        "<sibling id='3' value='30'/></distances>",
    )
    + _cell(
        3,
        extra="<distances><sibling id='0' value='21'/>"
        "<sibling id='1' value='12'/><sibling id='2' value='30'/>"
        "<sibling id='3' value='10'/></distances>",
    )
)


def test_memory_only_cells_take_the_nearest_cpu_cells_socket():
    topo = parse_capabilities(MEMORY_ONLY)
    assert [(c.id, c.socket, c.memory_only) for c in topo.cells] == [
        (0, 0, False),
        (1, 1, False),
        (2, 0, True),
        (3, 1, True),
    ]
    assert topo.sockets == [0, 1]


def test_distances_from_the_cpu_cells_row_are_enough():
    # only the CPU cell lists its distance to the memory-only cell
    xml = _caps(
        _cell(
            0,
            "<cpu id='0' socket_id='5'/>",
            extra="<distances><sibling id='0' value='10'/>"
            "<sibling id='1' value='13'/></distances>",
        )
        + _cell(1)
    )
    assert parse_capabilities(xml).cell(1).socket == 5


def test_units_are_converted():
    topo = parse_capabilities(
        _caps(
            _cell(
                0,
                "<cpu id='0'/>",
                memory="<memory unit='GiB'>2</memory>",
                extra="<pages unit='MiB' size='2'>10</pages>"
                "<pages unit='G' size='1'>1</pages>",
            )
        )
    )
    cell = topo.cell(0)
    assert cell.memory_mb == 2048
    assert [(p.size_kb, p.total) for p in cell.pages] == [(M2, 10), (G1, 1)]


BAD = [
    ("<capabilities><host>", "host.malformed-capabilities", "well-formed"),
    ("<domain/>", "host.malformed-capabilities", "<domain>"),
    (
        "<capabilities><host/></capabilities>",
        "host.no-topology",
        "capabilities_file",
    ),
    (_caps(""), "host.no-topology", "no NUMA cell"),
    (
        _caps("<cell><cpus/></cell>"),
        "host.invalid-capabilities",
        "without an id",
    ),
    (
        _caps(_cell(0, "<cpu socket_id='0'/>")),
        "host.invalid-capabilities",
        "<cpu> without an id",
    ),
    (_caps(_cell("x")), "host.invalid-capabilities", "'x'"),
    (
        _caps(_cell(0, "<cpu id='0'/>") + _cell(1, "<cpu id='0'/>")),
        "host.duplicate-cpu",
        "already listed in cell 0",
    ),
    (
        _caps(_cell(0) + _cell(0)),
        "host.invalid-capabilities",
        "appear more than once",
    ),
    (
        _caps(_cell(0, memory="<memory unit='furlongs'>1</memory>")),
        "host.unknown-unit",
        "furlongs",
    ),
    (
        _caps(_cell(0, extra="<pages unit='KiB' size='4'>many</pages>")),
        "host.invalid-capabilities",
        "'many'",
    ),
    (
        _caps(_cell(0, "<cpu id='0' siblings='0-x'/>")),
        "host.invalid-capabilities",
        "siblings",
    ),
]


@pytest.mark.parametrize(
    "xml,code,words", BAD, ids=[b[1] + "-" + b[2] for b in BAD]
)
def test_bad_capabilities(xml, code, words):
    with pytest.raises(HostError) as info:
        parse_capabilities(xml)
    assert info.value.code == code
    assert words in info.value.message
