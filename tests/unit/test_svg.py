"""render_svg draws every socket, cell and device, and renders.

Hosts: the shipped gpu8-2s bundle with its node devices (read through a
real ``test:///`` connection, as production reads libvirt), every
synthetic host of tests/hostgen.py, and an awkward hand-made host (CPUs
with no socket, a memory-only cell with no distances, devices with no or
an unknown NUMA node, names with markup characters).
"""

import pathlib
import shutil
import subprocess

import libvirt
import pytest
from lxml import etree

from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import (
    TYPE_PF,
    TYPE_VF,
    HostDevices,
    Mdev,
    MdevType,
    PciDevice,
    parse_node_devices,
)
from nova_slices.host.svg import render_svg
from nova_slices.host.topology import Cell, Cpu, HostTopology, PagePool
from tests import hostgen

SVG = "{http://www.w3.org/2000/svg}"
BUNDLE = (
    pathlib.Path(__file__).resolve().parents[2] / "etc" / "hosts" / "gpu8-2s"
)
EVIL = "<evil & co>"


def _gpu8():
    topo = parse_capabilities((BUNDLE / "capabilities.xml").read_text())
    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(f"test://{BUNDLE / 'node.xml'}")
    try:
        docs = [d.XMLDesc(0) for d in conn.listAllDevices()]
    finally:
        conn.close()
    return topo, parse_node_devices(docs, topo)


def _awkward():
    """Unknown sockets, an orphan memory-only cell, odd devices."""
    topo = HostTopology(
        (
            Cell(0, tuple(Cpu(i) for i in range(4)), 4 << 20, ()),
            Cell(1, (), 2 << 20, (PagePool(4, 524288),)),
            Cell(
                2,
                tuple(
                    Cpu(i, socket=0, core=i - 4, siblings=frozenset({i}))
                    for i in range(4, 8)
                ),
                8 << 20,
                (PagePool(4, 1048576), PagePool(2048, 1024)),
                ((0, 20), (2, 10)),
                socket=0,
            ),
        )
    )
    vfs = ("0000:5e:00.2", "0000:5e:00.3")
    devices = HostDevices(
        pci=(
            PciDevice(
                "0000:17:00.0",
                "10de",
                "1eb8",
                "030200",
                numa_node=2,
                socket=0,
                mdev_types=(
                    MdevType("nvidia-222", 16, "vfio-pci", "A<B & C"),
                ),
                name=EVIL,
            ),
            PciDevice(
                "0000:5e:00.0",
                "15b3",
                "101b",
                "020000",
                numa_node=2,
                dev_type=TYPE_PF,
                vf_addresses=vfs,
                max_vfs=8,
            ),
            *(
                PciDevice(
                    a,
                    "15b3",
                    "101c",
                    "020000",
                    numa_node=2,
                    dev_type=TYPE_VF,
                    parent_address="0000:5e:00.0",
                )
                for a in vfs
            ),
            PciDevice("0000:c1:00.0", "144d", "a80a", "010802"),
            PciDevice("0000:d1:00.0", "1da3", "0b25", "120000", numa_node=9),
        ),
        mdevs=(
            Mdev(
                "11111111-2222-3333-4444-555555555555",
                "nvidia-222",
                "0000:17:00.0",
            ),
        ),
    )
    return topo, devices


HOSTS = {
    "gpu8-2s": _gpu8,
    "awkward": _awkward,
    **{
        name: (lambda b=builder: (parse_capabilities(b()), None))
        for name, builder in hostgen.BUILDERS.items()
    },
}


@pytest.fixture(scope="module", params=sorted(HOSTS))
def drawn(request):
    topo, devices = HOSTS[request.param]()
    text = render_svg(topo, devices, title=request.param)
    return topo, devices, text, etree.fromstring(text.encode())


def _texts(root):
    """Every piece of text in the picture, tooltips included."""
    return [el.text for el in root.iter(f"{SVG}text", f"{SVG}title")]


def _cells_in(group):
    return {
        int(el.get("data-cell"))
        for el in group.iter()
        if el.get("data-cell") is not None
    }


def test_well_formed_svg(drawn):
    _, _, _, root = drawn
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width")) > 0 and float(root.get("height")) > 0


def test_one_group_per_socket(drawn):
    topo, _, _, root = drawn
    sockets = [g.get("data-socket") for g in root.iter(f"{SVG}g")]
    assert sorted(int(s) for s in sockets if s is not None) == topo.sockets


def test_one_box_per_cell(drawn):
    topo, _, _, root = drawn
    cells = [g.get("data-cell") for g in root.iter(f"{SVG}g")]
    assert sorted(int(c) for c in cells if c is not None) == [
        c.id for c in topo.cells
    ]


def test_memory_only_cells_are_marked(drawn):
    topo, _, _, root = drawn
    for g in root.iter(f"{SVG}g"):
        if g.get("data-cell") is None:
            continue
        cell = topo.cell(int(g.get("data-cell")))
        texts = " ".join(t for t in _texts(g) if t)
        assert ("g-memcell" in g.get("class")) == cell.memory_only
        assert ("memory only" in texts) == cell.memory_only


def test_memory_only_cell_drawn_in_its_nearest_socket():
    topo = parse_capabilities(hostgen.hbm_flat())
    root = etree.fromstring(render_svg(topo).encode())
    for g in root.iter(f"{SVG}g"):
        if g.get("data-socket") is not None:
            socket = int(g.get("data-socket"))
            # DDR cell 0/1 with its socket's HBM cell 2/3
            assert _cells_in(g) == {socket, socket + 2}


def test_every_pci_address_appears(drawn):
    _, devices, _, root = drawn
    texts = " ".join(t for t in _texts(root) if t)
    for device in devices.pci if devices else ():
        assert device.address in texts


def test_vfs_are_grouped_under_their_pf(drawn):
    _, devices, _, root = drawn
    drawn_devices = [
        g.get("data-address")
        for g in root.iter(f"{SVG}g")
        if g.get("data-address")
    ]
    pci = devices.pci if devices else ()
    expected = [d.address for d in pci if d.dev_type != TYPE_VF]
    assert sorted(drawn_devices) == sorted(expected)


def test_text_is_escaped():
    topo, devices = _awkward()
    text = render_svg(topo, devices, title="host <1> & more")
    assert "&lt;evil &amp; co&gt;" in text
    assert "A&lt;B &amp; C" in text
    root = etree.fromstring(text.encode())
    texts = " ".join(t for t in _texts(root) if t)
    assert EVIL in texts and "A<B & C" in texts
    assert "host <1> & more" in texts


def test_unknown_socket_and_no_affinity_groups():
    topo, devices = _awkward()
    root = etree.fromstring(render_svg(topo, devices).encode())
    texts = [t for t in _texts(root) if t]
    assert "unknown socket" in texts
    assert "no NUMA affinity" in texts
    unknown = [
        g
        for g in root.iter(f"{SVG}g")
        if "g-unknown" in (g.get("class") or "")
    ]
    # cells 0 (no socket ids) and 1 (no distances) in the first group;
    # the NVMe (no node) and the device on node 9 in the strip
    assert _cells_in(unknown[0]) == {0, 1}
    addresses = {
        g.get("data-address")
        for g in unknown[1].iter()
        if g.get("data-address")
    }
    assert addresses == {"0000:c1:00.0", "0000:d1:00.0"}


def test_big_cells_switch_to_compact_cores():
    topo = parse_capabilities(hostgen.gb200_34())
    root = etree.fromstring(render_svg(topo).encode())
    classes = [g.get("class") for g in root.iter(f"{SVG}g")]
    assert classes.count("cores-compact") == 2
    assert "core-box" not in classes
    texts = [t for t in _texts(root) if t]
    assert "CPUs 0-71" in texts and "CPUs 72-143" in texts


def test_cores_show_sibling_thread_ids():
    topo = parse_capabilities(hostgen.laptop())
    root = etree.fromstring(render_svg(topo).encode())
    boxes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "core-box"]
    assert len(boxes) == 8
    ids = [[t.text for t in b.iter(f"{SVG}text")] for b in boxes]
    assert ids[0] == ["0", "8"] and ids[7] == ["7", "15"]


def test_renders_to_png_with_rsvg_convert(drawn):
    binary = shutil.which("rsvg-convert")
    if binary is None:
        pytest.fail(
            "rsvg-convert is not installed; it renders the SVG in this "
            "test (Debian/Ubuntu: apt-get install librsvg2-bin)"
        )
    _, _, text, _ = drawn
    result = subprocess.run(
        [binary, "--format=png"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"\x89PNG\r\n\x1a\n")
