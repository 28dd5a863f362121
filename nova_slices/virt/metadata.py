"""Our record inside each guest's domain XML ``<metadata>``.

libvirt is the source of truth for which guests exist; recording the
instance uuid and the slice in the domain itself means a restarted
service rebuilds its bookkeeping from libvirt alone, with no database of
its own that could drift.  We inject the element after rendering, so an
operator's template cannot forget it or forge it.
"""

import dataclasses

from lxml import etree

from nova_slices.cpuset import format_cpuset, parse_cpuset
from nova_slices.fit.model import CellPlacement

NS = "http://openstack.org/xmlns/nova-slices/1.0"
PREFIX = "slices"


@dataclasses.dataclass(frozen=True)
class GuestRecord:
    name: str
    instance_uuid: str
    slice_name: str | None
    resource_class: str | None
    created_at: str | None = None
    #: PCI addresses bound to the guest (devices beyond the template's)
    pci: tuple = ()
    #: (uuid, type, parent address) of the guest's mdevs
    mdevs: tuple = ()
    #: a dynamic guest's NUMA cells (CellPlacement, ...): with ``pci``,
    #: what its local claim took, so usage is rebuilt from libvirt alone
    cells: tuple = ()
    #: ((resource class, amount), ...) a dynamic guest took from the
    #: compute node in Placement (cross-checked by ``list``)
    resources: tuple = ()
    #: a dynamic guest's flavor: vcpus, memory_mb, disk_gb
    flavor: tuple | None = None

    @property
    def dynamic(self):
        return self.flavor is not None


def _q(tag):
    return f"{{{NS}}}{tag}"


_devices, _pci, _mdev = _q("devices"), _q("pci"), _q("mdev")
_numa, _cell, _resource = _q("numa"), _q("cell"), _q("resource")
FLAVOR_FIELDS = ("vcpus", "memory_mb", "disk_gb")


def inject(domain, record):
    """Add (replacing any forged copy) our metadata to a domain element."""
    metadata = domain.find("metadata")
    if metadata is None:
        metadata = etree.Element("metadata")
        # libvirt orders <metadata> after <description>/<title>/<uuid>;
        # the schema accepts it anywhere among the top-level elements.
        domain.insert(metadata_index(domain), metadata)
    for old in metadata.findall(_q("instance")):
        metadata.remove(old)
    inst = etree.SubElement(metadata, _q("instance"), nsmap={PREFIX: NS})
    for field in (
        "instance_uuid",
        "slice_name",
        "resource_class",
        "created_at",
    ):
        value = getattr(record, field)
        if value is not None:
            etree.SubElement(inst, _q(field)).text = value
    if record.pci or record.mdevs:
        # type and parent are kept so that a rebooted host, whose kernel
        # forgot every mdev, can recreate the guest's mdevs
        devices = etree.SubElement(inst, _devices)
        for address in record.pci:
            etree.SubElement(devices, _pci, address=address)
        for uuid, mdev_type, parent in record.mdevs:
            etree.SubElement(
                devices, _mdev, uuid=uuid, type=mdev_type, parent=parent
            )
    if record.flavor is not None:
        etree.SubElement(
            inst,
            _q("flavor"),
            {
                k: str(v)
                for k, v in zip(FLAVOR_FIELDS, record.flavor, strict=True)
            },
        )
        resources = etree.SubElement(inst, _q("resources"))
        for rc, amount in record.resources:
            etree.SubElement(
                resources, _resource, {"class": rc, "amount": str(amount)}
            )
        numa = etree.SubElement(inst, _numa)
        for c in record.cells:
            etree.SubElement(numa, _cell, _cell_attrs(c))
    return domain


def _cell_attrs(c):
    attrs = {
        "guest": str(c.guest_cell),
        "host": str(c.host_cell),
        "memory_mb": str(c.memory_mb),
        "shared_vcpus": str(c.shared_vcpus),
        "pinning": ",".join(f"{v}:{p}" for v, p in c.cpu_pinning),
        "shared_cpus": format_cpuset(c.shared_cpus),
        "reserved_cpus": format_cpuset(c.reserved_cpus),
        "emulator_cpus": format_cpuset(c.emulator_cpus),
    }
    if c.pagesize_kb is not None:
        attrs["pagesize_kb"] = str(c.pagesize_kb)
    if c.pinned_guest:
        attrs["pinned_guest"] = "1"
    return attrs


def _ids(text):
    return frozenset(parse_cpuset(text)) if text else frozenset()


def _cell_from(el):
    pinning = tuple(
        tuple(int(x) for x in pair.split(":"))
        for pair in (el.get("pinning") or "").split(",")
        if pair
    )
    pagesize = el.get("pagesize_kb")
    return CellPlacement(
        guest_cell=int(el.get("guest")),
        host_cell=int(el.get("host")),
        cpu_pinning=pinning,
        shared_cpus=_ids(el.get("shared_cpus")),
        reserved_cpus=_ids(el.get("reserved_cpus")),
        emulator_cpus=_ids(el.get("emulator_cpus")),
        memory_mb=int(el.get("memory_mb")),
        pagesize_kb=None if pagesize is None else int(pagesize),
        shared_vcpus=int(el.get("shared_vcpus", "0")),
        # absent in records written before the attribute existed: their
        # pinned vCPUs still make the cell strict (claims.cell_pages)
        pinned_guest=el.get("pinned_guest") == "1",
    )


def metadata_index(domain):
    """Where <metadata> goes: after the domain's name and identity."""
    for i, child in enumerate(domain):
        if child.tag not in ("name", "uuid", "title", "description"):
            return i
    return len(domain)


def read(domain_xml):
    """Our record from a domain's XML, or None if it is not ours."""
    return record_of(etree.fromstring(domain_xml.encode()))


def record_of(root):
    """Our record from a parsed domain element, or None."""
    inst = root.find(f"metadata/{_q('instance')}")
    if inst is None:
        return None

    def text(tag):
        el = inst.find(_q(tag))
        return el.text if el is not None else None

    return GuestRecord(
        root.findtext("name"),
        text("instance_uuid"),
        text("slice_name"),
        text("resource_class"),
        text("created_at"),
        tuple(el.get("address") for el in inst.iterfind(f"{_devices}/{_pci}")),
        tuple(
            (el.get("uuid"), el.get("type"), el.get("parent"))
            for el in inst.iterfind(f"{_devices}/{_mdev}")
        ),
        tuple(_cell_from(el) for el in inst.iterfind(f"{_numa}/{_cell}")),
        tuple(
            (el.get("class"), int(el.get("amount")))
            for el in inst.iterfind(f"{_q('resources')}/{_resource}")
        ),
        _flavor_from(inst.find(_q("flavor"))),
    )


def _flavor_from(el):
    if el is None:
        return None
    return tuple(int(el.get(k, "0")) for k in FLAVOR_FIELDS)
