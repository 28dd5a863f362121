"""Node devices -> PCI devices and mdevs, over libvirt's samples."""

import os

import pytest

from nova_slices import data
from nova_slices.errors import HostError
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import (
    TYPE_PCI,
    TYPE_PF,
    TYPE_VF,
    MdevType,
    parse_node_devices,
    split_node_file,
)
from tests.unit.test_capabilities import DATA


def read(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def one(name, topology=None):
    devices = parse_node_devices([read(name)], topology)
    return devices.pci[0] if devices.pci else devices.mdevs[0]


# By hand from the XML: (address, vendor, product, class, numa node,
# iommu group, type, parent PF, VFs, mdev types)
SAMPLES = {
    "pci_1002_71c4.xml": (
        "0000:01:00.0",
        "1002",
        "71c4",
        None,
        1,
        None,
        TYPE_PCI,
        None,
        (),
        (),
    ),
    "pci_8086_10c9_sriov_pf.xml": (
        # no virt_functions capability in the file: a plain device
        "0000:02:00.0",
        "8086",
        "10c9",
        None,
        0,
        12,
        TYPE_PCI,
        None,
        (),
        (),
    ),
    "pci_0000_02_10_7_sriov.xml": (
        "0000:02:10.7",
        "8086",
        "10ca",
        "ffffff",
        0,
        31,
        TYPE_VF,
        "0000:02:00.1",
        (),
        (),
    ),
    "pci_0000_02_10_7_sriov_vfs.xml": (
        "0000:02:10.7",
        "8086",
        "10ca",
        "ffffff",
        0,
        31,
        TYPE_PF,
        None,
        ("0000:02:00.2", "0000:02:00.3", "0000:02:00.4", "0000:02:00.5"),
        (),
    ),
    # lists both phys_function and virt_functions: a VF wins
    "pci_0000_02_10_7_sriov_pf_vfs_all.xml": (
        "0000:02:10.7",
        "8086",
        "10ca",
        "ffffff",
        0,
        31,
        TYPE_VF,
        "0000:02:00.1",
        (),
        (),
    ),
    "pci_0000_02_10_7_mdev_types.xml": (
        "0000:02:10.7",
        "8086",
        "10ca",
        None,
        0,
        31,
        TYPE_PCI,
        None,
        (),
        (
            MdevType("foo1", 1, "vfio-pci", "bar1"),
            MdevType("foo2", 2, "vfio-pci", "bar2"),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_pci_samples(name):
    d = one(name)
    assert (
        d.address,
        d.vendor_id,
        d.product_id,
        d.class_id,
        d.numa_node,
        d.iommu_group,
        d.dev_type,
        d.parent_address,
        d.vf_addresses,
        d.mdev_types,
    ) == SAMPLES[name]


def test_mdev_sample():
    m = one("mdev_d069d019_36ea_4111_8f0a_8c9a70e21366.xml")
    assert (m.uuid, m.type) == (
        "d069d019-36ea-4111-8f0a-8c9a70e21366",
        "i915-GVTg_V5_8",
    )
    assert m.parent_address is None  # its parent is not among the docs


def test_mdev_parent_and_uuid_from_name():
    parent = read("pci_0000_02_10_7_mdev_types.xml")
    mdev = (
        "<device><name>mdev_4b20d080_1b54_4048_85b3_a6a62d165c01"
        "</name><parent>pci_0000_02_10_7</parent>"
        "<capability type='mdev'><type id='foo1'/></capability>"
        "</device>"
    )
    devices = parse_node_devices([parent, mdev])
    assert devices.mdevs[0].uuid == "4b20d080-1b54-4048-85b3-a6a62d165c01"
    assert devices.mdevs[0].parent_address == "0000:02:10.7"


def test_socket_comes_through_the_cell():
    topo = parse_capabilities(read("vircaps-x86_64-basic.xml"))
    assert one("pci_1002_71c4.xml", topo).socket == 1
    # cell 7 does not exist: unknown socket, not an error
    doc = read("pci_1002_71c4.xml").replace("node='1'", "node='7'")
    assert parse_node_devices([doc], topo).pci[0].socket is None


@pytest.mark.parametrize("numa", ["<numa node='-1'/>", ""])
def test_no_numa_node_is_none(numa):
    doc = read("pci_1002_71c4.xml").replace("<numa node='1'/>", numa)
    assert parse_node_devices([doc]).pci[0].numa_node is None


def test_shipped_node_file():
    path = os.path.join(data.host_bundle(), "node.xml")
    with open(path) as f:
        devices = parse_node_devices(split_node_file(f.read()))
    gpus = [d for d in devices.pci if d.product_id == "20b5"]
    assert [d.numa_node for d in gpus] == [0, 0, 1, 1, 2, 2, 3, 3]
    t4 = devices.device("0000:86:00.0")
    assert [t.name for t in t4.mdev_types] == ["nvidia-222", "nvidia-230"]
    # the node file has no host model, so the mdev's parent comes from
    # its <parent> node device name
    assert [(m.type, m.parent_address) for m in devices.mdevs] == [
        ("nvidia-222", "0000:86:00.0")
    ]
    pf = devices.device("0000:3b:00.0")
    assert pf.dev_type == TYPE_PF and len(pf.vf_addresses) == 8
    for vf in pf.vf_addresses:
        assert devices.device(vf).parent_address == pf.address


BAD = [
    (
        "<device><name>x</name><capability type='pci'><domain>0</domain>"
        "</capability></device>",
        "domain/bus/slot/function",
    ),
    (
        "<device><name>x</name><capability type='pci'><domain>0</domain>"
        "<bus>1</bus><slot>0</slot><function>0</function></capability>"
        "</device>",
        "vendor or product",
    ),
    ("<device><name>m</name><capability type='mdev'/></device>", "<type id>"),
    (
        "<device><name>m</name><capability type='mdev'><type id='t'/>"
        "</capability></device>",
        "no <uuid>",
    ),
    ("<device>", "well-formed"),
]


@pytest.mark.parametrize("xml,words", BAD)
def test_bad_node_devices(xml, words):
    with pytest.raises(HostError) as info:
        parse_node_devices([xml])
    assert info.value.code == "host.invalid-nodedev"
    assert words in info.value.message


def test_duplicate_addresses_are_refused():
    doc = read("pci_0000_02_10_7_sriov.xml")
    with pytest.raises(HostError) as info:
        parse_node_devices([doc, doc.replace("pci_0000_02_10_7", "other")])
    assert "0000:02:10.7 is reported by more than one" in info.value.message


def test_split_node_file_refuses_other_documents():
    with pytest.raises(HostError):
        split_node_file("<domain/>")
