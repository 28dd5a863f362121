"""libvirt node devices -> PCI devices and mediated devices (immutable).

What placement needs from a device: its address, ids, class, NUMA cell
(and through it the socket), IOMMU group, whether it is a plain device, an
SR-IOV physical function or a virtual function, the PF/VF relation, and
which mdev types it supports with how many instances remain.  A device
whose ``<numa node>`` is absent or -1 has cell ``None``: for the ``legacy``
PCI NUMA policy that differs from "on cell 0".

A device listing ``phys_function`` is a VF even if it also lists
``virt_functions`` (libvirt's own test data has such a device): a VF
cannot be assigned as a PF.

Numbers are checked, not just converted: a negative IOMMU group, VF
count or mdev instance count, an address part or id beyond what PCI
allows, or a NUMA node below -1 is an error naming the device and
element.  Documents are bounded before they are read (their size, and the
number of ``<device>`` elements of a node file), and parsed with the
project's one safe parser (:mod:`nova_slices.xmlinput`: no entities, no
DOCTYPE).  Errors name the source (a file, or libvirt) in ``key`` and in
the message.
"""

import dataclasses
import re

from lxml import etree

from nova_slices import xmlinput
from nova_slices.errors import HostError

#: one ``<device>`` document: a PF listing all of its (at most 65,535)
#: VFs is about 5 MiB
MAX_NODEDEV_BYTES = 8 * 1024 * 1024
#: a test-driver ``<node>`` file holding every device of a host
MAX_NODE_FILE_BYTES = 64 * 1024 * 1024
#: node devices of one host: large SR-IOV hosts have a few thousand
MAX_NODE_DEVICES = 16384
#: libvirt's NUMA node ids (see capabilities.MAX_CELL_ID)
MAX_NUMA_NODE = 1023

TYPE_PCI = "type-PCI"
TYPE_PF = "type-PF"
TYPE_VF = "type-VF"
_MDEV_NAME_RE = re.compile(
    r"^mdev_([0-9a-f]{8})_([0-9a-f]{4})_([0-9a-f]{4})_([0-9a-f]{4})_"
    r"([0-9a-f]{12})(?:_.*)?$"
)


@dataclasses.dataclass(frozen=True)
class MdevType:
    name: str
    available_instances: int
    device_api: str | None = None
    #: the type's human-readable name (``<name>``), when libvirt gives one
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class PciDevice:
    address: str
    vendor_id: str
    product_id: str
    class_id: str | None = None
    numa_node: int | None = None
    socket: int | None = None
    iommu_group: int | None = None
    dev_type: str = TYPE_PCI
    #: the PF of a VF
    parent_address: str | None = None
    #: the VFs of a PF
    vf_addresses: tuple = ()
    max_vfs: int | None = None
    mdev_types: tuple = ()  # of MdevType
    #: libvirt's node device name (``pci_0000_3b_00_0``)
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class Mdev:
    uuid: str
    type: str
    parent_address: str | None
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class HostDevices:
    pci: tuple = ()  # of PciDevice, by address
    mdevs: tuple = ()  # of Mdev, by uuid

    def by_address(self):
        return {d.address: d for d in self.pci}

    def device(self, address):
        return self.by_address().get(address)


def _fail(message, value=None, code="host.invalid-nodedev"):
    # ``key`` and the message's prefix are the source, added once by
    # _named
    return HostError(message, code=code, key="nodedev", value=value)


def _named(source):
    """Give a HostError raised inside its source (file or libvirt)."""

    def rename(exc):
        exc.key = source
        exc.message = f"{source}: {exc.message}"
        exc.args = (exc.message,)
        return exc

    return rename


def _int(text, where, low, high, valid, base=10):
    """An integer in [low, high]; ``where`` names the element."""
    try:
        number = int(text, base)
    except (TypeError, ValueError):
        raise _fail(f"{where}: {text!r} is not an integer", text) from None
    if not low <= number <= high:
        raise _fail(
            f"{where}: {number} is out of range; {valid}",
            number,
            code="host.value-out-of-range",
        )
    return number


def _hex(text, width, where):
    top = 16**width - 1
    return f"{_int(text, where, 0, top, f'0 to {top:#x}', 0):0{width}x}"


#: (name, highest value) of a PCI address's parts
_ADDRESS_PARTS = (
    ("domain", 0xFFFF),
    ("bus", 0xFF),
    ("slot", 0x1F),
    ("function", 0x7),
)


def format_address(domain, bus, slot, function):
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"


def _address(values, where, missing):
    if any(v is None for v in values):
        raise _fail(f"{where}: {missing}")
    return format_address(
        *(
            _int(v, f"{where} <address {k}>", 0, top, f"0 to {top:#x}", 0)
            for v, (k, top) in zip(values, _ADDRESS_PARTS, strict=True)
        )
    )


def _addr_from_attrs(el, where):
    return _address(
        [el.get(k) for k, _ in _ADDRESS_PARTS],
        where,
        "incomplete PCI <address>",
    )


def _addr_from_cap(cap, where):
    return _address(
        [cap.findtext(k) for k, _ in _ADDRESS_PARTS],
        where,
        "PCI capability lacks domain/bus/slot/function",
    )


def _parse_pci(dev, name):
    cap = dev.find("capability[@type='pci']")
    where = f"node device {name!r}"
    address = _addr_from_cap(cap, where)
    vendor = cap.find("vendor")
    product = cap.find("product")
    if (
        vendor is None
        or product is None
        or not vendor.get("id")
        or not product.get("id")
    ):
        raise _fail(f"{where}: PCI capability lacks vendor or product id")
    numa = cap.find("numa")
    node = None
    if numa is not None and numa.get("node") is not None:
        node = _int(
            numa.get("node"),
            f"{where} <numa node>",
            -1,
            MAX_NUMA_NODE,
            f"a NUMA node is 0 to {MAX_NUMA_NODE}, or -1 for none",
        )
        if node < 0:
            node = None
    group = cap.find("iommuGroup")
    pf = cap.find("capability[@type='phys_function']/address")
    vfs_cap = cap.find("capability[@type='virt_functions']")
    vfs = tuple(
        sorted(
            _addr_from_attrs(a, where)
            for a in (
                vfs_cap.iterfind("address") if vfs_cap is not None else ()
            )
        )
    )
    max_vfs = None
    if vfs_cap is not None and vfs_cap.get("maxCount") is not None:
        max_vfs = _int(
            vfs_cap.get("maxCount"),
            f"{where} <capability type='virt_functions' maxCount>",
            0,
            0xFFFF,
            "SR-IOV allows 0 to 65535 VFs",
        )
    if pf is not None:
        dev_type = TYPE_VF
    elif vfs_cap is not None and (vfs or max_vfs):
        dev_type = TYPE_PF
    else:
        dev_type = TYPE_PCI
    mdev_types = tuple(
        sorted(
            (
                MdevType(
                    t.get("id"),
                    _int(
                        t.findtext("availableInstances", "0"),
                        f"{where} mdev type {t.get('id')!r} "
                        "<availableInstances>",
                        0,
                        float("inf"),
                        "0 or more",
                    ),
                    t.findtext("deviceAPI"),
                    t.findtext("name"),
                )
                for t in cap.iterfind("capability[@type='mdev_types']/type")
            ),
            key=lambda m: m.name,
        )
    )
    class_text = cap.findtext("class")
    return PciDevice(
        address=address,
        vendor_id=_hex(vendor.get("id"), 4, where),
        product_id=_hex(product.get("id"), 4, where),
        class_id=_hex(class_text, 6, where) if class_text else None,
        numa_node=node,
        iommu_group=(
            _int(
                group.get("number"),
                f"{where} <iommuGroup number>",
                0,
                float("inf"),
                "IOMMU groups are 0 or more",
            )
            if group is not None
            else None
        ),
        dev_type=dev_type,
        parent_address=(
            _addr_from_attrs(pf, where) if pf is not None else None
        ),
        vf_addresses=vfs if dev_type == TYPE_PF else (),
        max_vfs=max_vfs if dev_type == TYPE_PF else None,
        mdev_types=mdev_types,
        name=name,
    )


def _parse_mdev(dev, name, parents):
    cap = dev.find("capability[@type='mdev']")
    type_el = cap.find("type")
    if type_el is None or not type_el.get("id"):
        raise _fail(f"mdev node device {name!r} lacks <type id>")
    uuid = cap.findtext("uuid")
    if not uuid:
        match = _MDEV_NAME_RE.match(name or "")
        if not match:
            raise _fail(
                f"mdev node device {name!r} has no <uuid> and its "
                "name does not carry one",
                name,
            )
        uuid = "-".join(match.groups())
    return Mdev(
        uuid, type_el.get("id"), parents.get(dev.findtext("parent")), name
    )


_PARSE_CODES = {
    xmlinput.TOO_LARGE: "host.nodedev-too-large",
    xmlinput.MALFORMED: "host.invalid-nodedev",
    xmlinput.DOCTYPE: "host.nodedev-doctype",
}


def _parse_doc(text, what, max_bytes):
    try:
        return xmlinput.parse(text, max_bytes)
    except xmlinput.UnsafeXml as exc:
        raise _fail(
            f"{what} {exc}", exc.lineno, code=_PARSE_CODES[exc.reason]
        ) from None


def parse_node_devices(xml_docs, topology=None, source="node devices"):
    """Parse nodedev XML documents into HostDevices.

    ``topology`` (a HostTopology) gives each PCI device the socket of its
    NUMA cell; without it, or for a cell the host does not have, the
    socket is ``None``.  ``source`` names where the documents came from
    in every error.
    """
    try:
        return _parse_devices(list(xml_docs), topology)
    except HostError as exc:
        raise _named(source)(exc) from None


def _parse_devices(xml_docs, topology):
    _check_count(len(xml_docs))
    pci, mdev_els = [], []
    for text in xml_docs:
        dev = _parse_doc(text, "node device XML", MAX_NODEDEV_BYTES)
        name = dev.findtext("name")
        if dev.find("capability[@type='pci']") is not None:
            pci.append(_parse_pci(dev, name))
        elif dev.find("capability[@type='mdev']") is not None:
            mdev_els.append((dev, name))
    if topology is not None:
        pci = [
            dataclasses.replace(
                d,
                socket=topology.socket_of_cell(d.numa_node)
                if d.numa_node is not None
                else None,
            )
            for d in pci
        ]
    seen = set()
    for d in pci:
        if d.address in seen:
            raise _fail(
                f"PCI address {d.address} is reported by more than one node "
                f"device (one is {d.name!r}); every address must be unique",
                d.address,
            )
        seen.add(d.address)
    parents = {d.name: d.address for d in pci if d.name}
    mdevs = [_parse_mdev(dev, name, parents) for dev, name in mdev_els]
    return HostDevices(
        tuple(sorted(pci, key=lambda d: d.address)),
        tuple(sorted(mdevs, key=lambda m: m.uuid)),
    )


def _check_count(count):
    if count > MAX_NODE_DEVICES:
        raise _fail(
            f"lists {count} node devices; at most {MAX_NODE_DEVICES} are "
            "accepted",
            count,
            code="host.nodedev-too-many",
        )


def split_node_file(text, source="node device file"):
    """Device documents of a nodedev file: one ``<device>``, or every
    ``<device>`` of a libvirt test-driver ``<node>`` file."""
    try:
        root = _parse_doc(text, "node device file", MAX_NODE_FILE_BYTES)
        if root.tag == "device":
            return [etree.tostring(root)]
        if root.tag == "node":
            # counted by libxml2 before any device is copied out
            _check_count(int(root.xpath("count(device)")))
            return [etree.tostring(d) for d in root.iterfind("device")]
        raise _fail(
            f"expected <device> or a test-driver <node>, found <{root.tag}>",
            root.tag,
        )
    except HostError as exc:
        raise _named(source)(exc) from None
