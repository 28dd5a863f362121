"""The shipped nfv-snc-2s host bundle: a host without slices.

A 2-socket SNC2 host (4 cells x 8 cores x 2 threads) with an A100 for
passthrough, a T4 for vGPUs and two ConnectX-6 Dx NICs with SR-IOV VFs,
for dynamic NUMA-pinned guests.  As for gpu8-2s, the capabilities are read
through libvirt's schema and the node file through a real ``test:///``
connection; the bundle's nova-slices.conf is then checked against the
host the way startup checks it.
"""

import configparser
import pathlib

import libvirt
import pytest
from lxml import etree

from nova_slices import conf as conf_mod
from nova_slices import data
from nova_slices.devices.mdev_config import resolve_mdev_types
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.fit.pci import PciRequest, choose_devices, parse_aliases
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import (
    TYPE_PCI,
    TYPE_PF,
    TYPE_VF,
    parse_node_devices,
)
from nova_slices.host.restrictions import load_restrictions
from nova_slices.virt import schema
from tests import hostgen

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "etc" / "hosts" / "nfv-snc-2s"
CAPS = BUNDLE / "capabilities.xml"
NODE = BUNDLE / "node.xml"
CONF = BUNDLE / "nova-slices.conf"
NODEDEV_RNG = "/usr/share/libvirt/schemas/nodedev.rng"

GIB_KB = 1024 * 1024
CELL_CPUS = {
    0: set(range(0, 8)) | set(range(32, 40)),
    1: set(range(8, 16)) | set(range(40, 48)),
    2: set(range(16, 24)) | set(range(48, 56)),
    3: set(range(24, 32)) | set(range(56, 64)),
}
A100 = "0000:31:00.0"
T4 = "0000:b1:00.0"
PFS = {"0000:17:00.0": 0, "0000:98:00.0": 2}
VFS = {
    "0000:17:00.0": [f"0000:17:00.{f}" for f in range(2, 6)],
    "0000:98:00.0": [f"0000:98:00.{f}" for f in range(2, 6)],
}
ALL_VFS = sorted(a for vfs in VFS.values() for a in vfs)
SHARED = {0, 8, 16, 24, 32, 40, 48, 56}

SPEC = hostgen.HostSpec(
    sockets=2,
    cells_per_socket=2,
    cores_per_cell=8,
    threads_per_core=2,
    memory_per_cell_gib=64,
    hugepages=((hostgen.M2, 1024), (hostgen.G1, 8)),
    same_socket=12,
    remote=21,
    model="SapphireRapids",
    vendor="Intel",
)


@pytest.fixture(scope="module")
def topology():
    return parse_capabilities(CAPS.read_text())


@pytest.fixture(scope="module")
def conn():
    c = libvirt.open(f"test://{NODE}")
    yield c
    c.close()


@pytest.fixture(scope="module")
def devices(conn, topology):
    return parse_node_devices(
        [d.XMLDesc() for d in conn.listAllDevices()], topology
    )


@pytest.fixture(scope="module")
def conf():
    return conf_mod.make_conf(["--config-file", str(CONF)])


# -- the bundle as shipped ----------------------------------------------------


def test_bundle_is_shipped():
    assert pathlib.Path(data.host_bundle("nfv-snc-2s")) == BUNDLE
    assert {p.name for p in BUNDLE.iterdir()} >= {
        "capabilities.xml",
        "node.xml",
        "nova-slices.conf",
    }
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert (
        cfg["options.data_files"]["share/nova-slices/hosts/nfv-snc-2s"]
        == "etc/hosts/nfv-snc-2s/*"
    )


# -- capabilities.xml ---------------------------------------------------------


def test_capabilities_validate_against_libvirt_schema():
    schema.validate_capabilities_xml(CAPS.read_text())
    schema.validate_capabilities_xml(etree.parse(str(CAPS)))


def test_capabilities_are_what_hostgen_generates():
    """The static file is hostgen's output for SPEC, plus a comment."""
    shipped = etree.parse(str(CAPS)).getroot()
    generated = etree.fromstring(hostgen.capabilities_xml(SPEC).encode())
    assert etree.tostring(shipped) == etree.tostring(generated)


def test_capabilities_topology(topology):
    assert [c.id for c in topology.cells] == [0, 1, 2, 3]
    assert topology.cpu_ids == frozenset(range(64))
    for cell in topology.cells:
        assert {c.id for c in cell.cpus} == CELL_CPUS[cell.id]
        assert cell.socket == cell.id // 2
        assert topology.socket_of_cell(cell.id) == cell.id // 2
        for cpu in cell.cpus:
            first = cpu.id % 32
            assert cpu.siblings == {first, first + 32}
            assert cpu.socket == cell.id // 2
            assert cpu.core == first % 16
            assert cpu.die == 0
        assert cell.memory_kb == 64 * GIB_KB
        pages = {p.size_kb: p.total for p in cell.pages}
        assert pages == {
            4: (64 * GIB_KB - 8 * GIB_KB - 1024 * 2048) // 4,
            2048: 1024,
            1048576: 8,
        }
        assert sum(s * n for s, n in pages.items()) == 64 * GIB_KB
        assert dict(cell.distances) == {
            o: 10 if o == cell.id else 12 if o // 2 == cell.id // 2 else 21
            for o in range(4)
        }


def test_capabilities_cpu_block():
    caps = etree.parse(str(CAPS))
    assert dict(caps.find("host/cpu/topology").attrib) == {
        "sockets": "2",
        "dies": "1",
        "cores": "16",
        "threads": "2",
    }
    assert caps.findtext("host/cpu/arch") == "x86_64"
    assert caps.findtext("host/cpu/model") == "SapphireRapids"
    assert caps.findtext("host/cpu/vendor") == "Intel"
    assert caps.findtext("host/uuid")


# -- node.xml in the test driver ----------------------------------------------


def test_node_file_opens_in_test_driver(conn):
    model, memory_mib, cpus, _mhz, nodes, sockets, cores, threads = (
        conn.getInfo()
    )
    assert (model, memory_mib, cpus, nodes) == ("x86_64", 4 * 65536, 64, 4)
    assert (sockets, cores, threads) == (1, 8, 2)


def test_node_devices_validate_against_nodedev_schema(conn):
    rng = etree.RelaxNG(etree.parse(NODEDEV_RNG))
    names = set()
    for dev in conn.listAllDevices():
        doc = etree.fromstring(dev.XMLDesc())
        assert rng.validate(doc), (dev.name(), rng.error_log)
        names.add(dev.name())
        if dev.name() != "computer":
            assert doc.findtext("parent") == "computer"
    assert names == {"computer"} | {
        "pci_" + a.replace(":", "_").replace(".", "_")
        for a in [A100, T4, *PFS, *ALL_VFS]
    }


def test_node_devices_parse(devices):
    by = devices.by_address()
    assert set(by) == {A100, T4, *PFS, *ALL_VFS}
    assert devices.mdevs == ()
    groups = [d.iommu_group for d in devices.pci]
    assert None not in groups and len(set(groups)) == len(groups)

    a100 = by[A100]
    assert (a100.vendor_id, a100.product_id, a100.class_id) == (
        "10de",
        "20b5",
        "030200",
    )
    assert (a100.numa_node, a100.socket, a100.dev_type) == (1, 0, TYPE_PCI)
    assert a100.mdev_types == ()

    t4 = by[T4]
    assert (t4.vendor_id, t4.product_id, t4.class_id) == (
        "10de",
        "1eb8",
        "030200",
    )
    assert (t4.numa_node, t4.socket, t4.dev_type) == (3, 1, TYPE_PCI)
    assert {
        m.name: (m.available_instances, m.device_api) for m in t4.mdev_types
    } == {"nvidia-222": (16, "vfio-pci"), "nvidia-230": (0, "vfio-pci")}
    assert {m.name: m.description for m in t4.mdev_types}[
        "nvidia-222"
    ] == "GRID T4-1B"

    for pf_address, cell in PFS.items():
        pf = by[pf_address]
        assert (pf.vendor_id, pf.product_id, pf.class_id) == (
            "15b3",
            "101d",
            "020000",
        )
        assert (pf.numa_node, pf.socket, pf.dev_type) == (
            cell,
            cell // 2,
            TYPE_PF,
        )
        assert pf.max_vfs == 8
        assert list(pf.vf_addresses) == VFS[pf_address]
        for vf_address in VFS[pf_address]:
            vf = by[vf_address]
            assert (vf.vendor_id, vf.product_id) == ("15b3", "101e")
            assert (vf.numa_node, vf.socket, vf.dev_type) == (
                cell,
                cell // 2,
                TYPE_VF,
            )
            assert vf.parent_address == pf_address


def test_bundle_is_consistent(topology, devices):
    """Every device's NUMA node is a cell the capabilities describe."""
    cells = {c.id for c in topology.cells}
    for d in devices.pci:
        assert d.numa_node in cells, d.address


# -- nova-slices.conf ---------------------------------------------------------


def test_conf_has_no_slices(conf):
    assert conf.libvirt.slice_spec == []


def test_conf_restrictions(conf, topology):
    r = load_restrictions(conf, topology)
    assert r.shared_cpus == SHARED
    assert r.dedicated_cpus == frozenset(range(64)) - SHARED
    assert not r.shared_cpus & r.dedicated_cpus
    assert r.shared_cpus | r.dedicated_cpus == topology.cpu_ids
    # one core (both threads) per cell is shared, seven are dedicated
    for cell in topology.cells:
        ids = {c.id for c in cell.cpus}
        assert len(ids & r.shared_cpus) == 2
        assert len(ids & r.dedicated_cpus) == 14
    assert r.reserved_memory_mb == 4096
    assert r.reserved_pages == ()


def test_conf_device_specs(conf, devices):
    specs = parse_device_specs(conf.pci.device_spec)
    chosen = {d.address: (d, s) for d, s in assignable(specs, devices)}
    assert sorted(chosen) == sorted([A100, *ALL_VFS])
    for address in [T4, *PFS]:
        assert address not in chosen
    device, spec = chosen[A100]
    assert spec.class_for(device) == "CUSTOM_PCI_GPU_A100"
    assert spec.physical_network is None
    assert spec.traits == ()
    for address in ALL_VFS:
        device, spec = chosen[address]
        assert spec.class_for(device) == "CUSTOM_NIC_VF"
        assert spec.physical_network == "physnet1"
        assert spec.traits == ("HW_NIC_SRIOV",)


def test_conf_aliases(conf, devices, topology):
    aliases = parse_aliases(conf.pci.alias)
    assert set(aliases) == {"a100", "vf"}
    a100, vf = aliases["a100"], aliases["vf"]
    assert (a100.vendor_id, a100.product_id) == ("10de", "20b5")
    assert (a100.device_type, a100.numa_policy) == (TYPE_PCI, "socket")
    assert (vf.vendor_id, vf.product_id) == ("15b3", "101e")
    assert (vf.device_type, vf.numa_policy) == (TYPE_VF, "required")

    def matching(spec):
        request = PciRequest(spec.name, 1, spec, spec.numa_policy)
        return sorted(d.address for d in devices.pci if request.matches(d))

    assert matching(a100) == [A100]
    assert matching(vf) == ALL_VFS

    def choose(spec, cells, count=1):
        request = PciRequest(spec.name, count, spec, spec.numa_policy)
        return choose_devices([request], devices.pci, set(cells), topology)

    # socket policy: the A100 (cell 1) serves either cell of socket 0 only
    assert choose(a100, {0}) == (A100,)
    assert choose(a100, {1}) == (A100,)
    assert choose(a100, {2}) is None
    assert choose(a100, {3}) is None
    # required: a VF of the guest's own cell; four per NIC
    assert set(choose(vf, {0}, 4)) == set(VFS["0000:17:00.0"])
    assert set(choose(vf, {2}, 4)) == set(VFS["0000:98:00.0"])
    assert choose(vf, {0}, 5) is None
    assert choose(vf, {1}) is None
    assert choose(vf, {3}) is None


def test_conf_mdev_types(conf, devices):
    (vgpu,) = resolve_mdev_types(conf, devices)
    assert vgpu.type == "nvidia-222"
    assert vgpu.resource_class == "VGPU"
    assert vgpu.max_instances is None
    assert vgpu.parents == (T4,)
