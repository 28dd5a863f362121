"""The shipped gpu8-2s host bundle is a faithful, self-consistent machine.

capabilities.xml carries the NUMA topology (the test driver cannot), and
node.xml carries the PCI devices for libvirt's test driver.  Both are read
the way production reads libvirt: the capabilities through libvirt's
schema, the node file through a real ``test:///`` connection.
"""

import pathlib

import libvirt
import pytest
from lxml import etree

from nova_slices.errors import HostError
from nova_slices.virt import schema

BUNDLE = (
    pathlib.Path(__file__).resolve().parents[2] / "etc" / "hosts" / "gpu8-2s"
)
CAPS = BUNDLE / "capabilities.xml"
NODE = BUNDLE / "node.xml"
NODEDEV_RNG = "/usr/share/libvirt/schemas/nodedev.rng"

GPU_NUMA = {
    "0000:17:00.0": 0,
    "0000:31:00.0": 0,
    "0000:4b:00.0": 1,
    "0000:65:00.0": 1,
    "0000:98:00.0": 2,
    "0000:b1:00.0": 2,
    "0000:ca:00.0": 3,
    "0000:e3:00.0": 3,
}
PF = "0000:3b:00.0"
VFS = [
    "0000:3b:00.2",
    "0000:3b:00.3",
    "0000:3b:00.4",
    "0000:3b:00.5",
    "0000:3b:00.6",
    "0000:3b:00.7",
    "0000:3b:01.0",
    "0000:3b:01.1",
]


def _addr(el):
    """PCI address text from a nodedev <address> or <capability type='pci'>."""
    if el.tag == "address":
        return "%04x:%02x:%02x.%x" % tuple(
            int(el.get(k), 16) for k in ("domain", "bus", "slot", "function")
        )
    return "%04x:%02x:%02x.%x" % tuple(
        int(el.findtext(k)) for k in ("domain", "bus", "slot", "function")
    )


@pytest.fixture(scope="module")
def caps():
    return etree.parse(str(CAPS))


@pytest.fixture(scope="module")
def conn():
    c = libvirt.open(f"test://{NODE}")
    yield c
    c.close()


@pytest.fixture(scope="module")
def pci_devices(conn):
    """address -> parsed <capability type='pci'> of every PCI node device."""
    out = {}
    for dev in conn.listAllDevices(
        libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV
    ):
        cap = etree.fromstring(dev.XMLDesc()).find("capability[@type='pci']")
        out[_addr(cap)] = cap
    return out


# -- capabilities.xml ---------------------------------------------------------


def test_capabilities_validate_against_libvirt_schema(caps):
    schema.validate_capabilities_xml(CAPS.read_text())
    schema.validate_capabilities_xml(caps)


def test_capabilities_topology(caps):
    cells = caps.findall("host/topology/cells/cell")
    assert [int(c.get("id")) for c in cells] == [0, 1, 2, 3]
    assert caps.find("host/topology/cells").get("num") == "4"
    for cell in cells:
        cid = int(cell.get("id"))
        cpus = {int(c.get("id")): c for c in cell.findall("cpus/cpu")}
        base = 16 * cid
        expected = set(range(base, base + 16)) | set(
            range(base + 64, base + 80)
        )
        assert set(cpus) == expected
        assert cell.find("cpus").get("num") == "32"
        for cpu_id, cpu in cpus.items():
            first = cpu_id % 64
            assert cpu.get("siblings") == f"{first},{first + 64}"
            assert int(cpu.get("socket_id")) == cid // 2
            assert int(cpu.get("core_id")) == first % 32
            assert cpu.get("die_id") == "0"
        mem = cell.find("memory")
        assert (mem.get("unit"), int(mem.text)) == ("KiB", 262144 * 1024)
        pages = {
            int(p.get("size")): int(p.text) for p in cell.findall("pages")
        }
        assert pages[1048576] == 224 and pages[2048] == 1024
        assert sum(size * n for size, n in pages.items()) == 262144 * 1024
        dist = {
            int(s.get("id")): int(s.get("value"))
            for s in cell.findall("distances/sibling")
        }
        assert dist == {
            o: 10 if o == cid else 12 if o // 2 == cid // 2 else 21
            for o in range(4)
        }
    topo = caps.find("host/cpu/topology")
    assert dict(topo.attrib) == {
        "sockets": "2",
        "dies": "1",
        "cores": "32",
        "threads": "2",
    }
    assert caps.findtext("host/cpu/arch") == "x86_64"
    assert caps.findtext("host/uuid")


@pytest.mark.parametrize(
    "mutate, code",
    [
        (
            lambda t: t.replace("<arch>x86_64</arch>", ""),
            "host.invalid-capabilities",
        ),
        (
            lambda t: t.replace("die_id='0' ", "", 1),
            "host.invalid-capabilities",
        ),
        (
            lambda t: t.replace("</capabilities>", ""),
            "host.invalid-capabilities",
        ),
    ],
)
def test_capabilities_invalid_is_reported(mutate, code):
    with pytest.raises(HostError) as exc:
        schema.validate_capabilities_xml(mutate(CAPS.read_text()))
    assert exc.value.code == code
    assert "line" in exc.value.message


def test_capabilities_missing_schema():
    with pytest.raises(HostError) as exc:
        schema.validate_capabilities_xml(
            CAPS.read_text(), schema_path="/nonexistent/capability.rng"
        )
    assert exc.value.code == "host.schema-unavailable"


# -- node.xml in the test driver ----------------------------------------------


def test_node_file_opens_in_test_driver(conn):
    assert conn.getHostname()
    model, memory_mib, cpus, _mhz, nodes, _sockets, _cores, _threads = (
        conn.getInfo()
    )
    assert (model, memory_mib, cpus, nodes) == ("x86_64", 4 * 262144, 128, 4)


def test_node_devices_validate_against_nodedev_schema(conn):
    rng = etree.RelaxNG(etree.parse(NODEDEV_RNG))
    for dev in conn.listAllDevices():
        assert rng.validate(etree.fromstring(dev.XMLDesc())), (
            dev.name(),
            rng.error_log,
        )


def test_node_has_eight_a100_on_their_numa_cells(pci_devices):
    gpus = {
        a: c
        for a, c in pci_devices.items()
        if c.find("product").get("id") == "0x20b5"
    }
    assert {
        a: int(c.find("numa").get("node")) for a, c in gpus.items()
    } == GPU_NUMA
    for cap in gpus.values():
        assert cap.find("product").get("id") == "0x20b5"
        assert cap.find("iommuGroup") is not None


def test_node_has_connectx6_pf_with_eight_vfs(pci_devices):
    pf = pci_devices[PF]
    assert (pf.find("vendor").get("id"), pf.find("product").get("id")) == (
        "0x15b3",
        "0x101b",
    )
    assert pf.find("numa").get("node") == "0"
    vfcap = pf.find("capability[@type='virt_functions']")
    assert vfcap.get("maxCount") == "8"
    assert [_addr(a) for a in vfcap.findall("address")] == VFS
    groups = set()
    for vf in VFS:
        cap = pci_devices[vf]
        assert cap.find("product").get("id") == "0x101c"
        assert cap.find("numa").get("node") == "0"
        assert (
            _addr(cap.find("capability[@type='phys_function']/address")) == PF
        )
        groups.add(cap.find("iommuGroup").get("number"))
    assert len(groups) == len(VFS)


def test_bundle_is_consistent(caps, pci_devices):
    """Every device's NUMA node is a cell the capabilities describe."""
    cells = {
        int(c.get("id")) for c in caps.findall("host/topology/cells/cell")
    }
    for address, cap in pci_devices.items():
        assert int(cap.find("numa").get("node")) in cells, address


def test_node_has_a_t4_split_into_mdevs(conn):
    """The mdev-capable GPU: types with instances left, one mdev made."""
    from nova_slices.host.capabilities import parse_capabilities
    from nova_slices.host.devices import parse_node_devices

    devices = parse_node_devices(
        [d.XMLDesc() for d in conn.listAllDevices()],
        parse_capabilities(CAPS.read_text()),
    )
    t4 = devices.device("0000:86:00.0")
    assert (t4.vendor_id, t4.product_id, t4.numa_node, t4.socket) == (
        "10de",
        "1eb8",
        2,
        1,
    )
    assert {t.name: t.available_instances for t in t4.mdev_types} == {
        "nvidia-222": 15,
        "nvidia-230": 0,
    }
    assert [(m.uuid, m.type, m.parent_address) for m in devices.mdevs] == [
        (
            "3e9c4b0a-6f0e-4d2b-9d59-8a7c2c1f0001",
            "nvidia-222",
            "0000:86:00.0",
        )
    ]
