"""Our record inside each guest's domain XML ``<metadata>``.

libvirt is the source of truth for which guests exist; recording the
instance uuid and the slice in the domain itself means a restarted
service rebuilds its bookkeeping from libvirt alone, with no database of
its own that could drift.  We inject the element after rendering, so an
operator's template cannot forget it or forge it.
"""

import dataclasses

from lxml import etree

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


def _q(tag):
    return f"{{{NS}}}{tag}"


_devices, _pci, _mdev = _q("devices"), _q("pci"), _q("mdev")


def inject(domain, record):
    """Add (replacing any forged copy) our metadata to a domain element."""
    metadata = domain.find("metadata")
    if metadata is None:
        metadata = etree.Element("metadata")
        # libvirt orders <metadata> after <description>/<title>/<uuid>;
        # the schema accepts it anywhere among the top-level elements.
        domain.insert(_insert_index(domain), metadata)
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
    return domain


def _insert_index(domain):
    for i, child in enumerate(domain):
        if child.tag not in ("name", "uuid", "title", "description"):
            return i
    return len(domain)


def read(domain_xml):
    """Our record from a domain's XML, or None if it is not ours."""
    root = etree.fromstring(domain_xml.encode())
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
    )
