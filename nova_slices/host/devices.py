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
"""

import dataclasses
import re

from lxml import etree

from nova_slices.errors import HostError

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


def _fail(message, value=None):
    return HostError(
        message, code="host.invalid-nodedev", key="nodedev", value=value
    )


def _hex(text, width, where):
    try:
        return f"{int(text, 0):0{width}x}"
    except (TypeError, ValueError):
        raise _fail(f"{where}: {text!r} is not a number", text) from None


def format_address(domain, bus, slot, function):
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"


def _addr_from_attrs(el, where):
    try:
        parts = [
            int(el.get(k), 0) for k in ("domain", "bus", "slot", "function")
        ]
    except (TypeError, ValueError):
        raise _fail(f"{where}: incomplete PCI <address>") from None
    return format_address(*parts)


def _addr_from_cap(cap, where):
    try:
        parts = [
            int(cap.findtext(k), 0)
            for k in ("domain", "bus", "slot", "function")
        ]
    except (TypeError, ValueError):
        raise _fail(
            f"{where}: PCI capability lacks domain/bus/slot/function"
        ) from None
    return format_address(*parts)


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
        node = int(numa.get("node"))
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
        max_vfs = int(vfs_cap.get("maxCount"))
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
                    int(t.findtext("availableInstances", "0")),
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
        iommu_group=int(group.get("number")) if group is not None else None,
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


def parse_node_devices(xml_docs, topology=None):
    """Parse nodedev XML documents into HostDevices.

    ``topology`` (a HostTopology) gives each PCI device the socket of its
    NUMA cell; without it, or for a cell the host does not have, the
    socket is ``None``.
    """
    pci, mdev_els = [], []
    for text in xml_docs:
        try:
            dev = etree.fromstring(
                text.encode() if isinstance(text, str) else text
            )
        except etree.XMLSyntaxError as exc:
            raise _fail(
                f"node device XML is not well-formed: {exc.msg}"
            ) from None
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


def split_node_file(text):
    """Device documents of a nodedev file: one ``<device>``, or every
    ``<device>`` of a libvirt test-driver ``<node>`` file."""
    try:
        root = etree.fromstring(
            text.encode() if isinstance(text, str) else text
        )
    except etree.XMLSyntaxError as exc:
        raise _fail(
            f"node device file is not well-formed: {exc.msg} "
            f"(line {exc.lineno})"
        ) from None
    if root.tag == "device":
        return [etree.tostring(root)]
    if root.tag == "node":
        return [etree.tostring(d) for d in root.iterfind("device")]
    raise _fail(
        f"expected <device> or a test-driver <node>, found <{root.tag}>",
        root.tag,
    )
