"""Which host devices a domain holds, read from its XML (pure).

The in-use set is rebuilt from every defined domain's ``<hostdev>``
elements, ours or not: a GPU written into an operator's slice template or
a device another tool gave a guest is as taken as one we bound.  Reading
the XML rather than our own records means nothing can drift after a
restart.
"""

import dataclasses

from lxml import etree


@dataclasses.dataclass(frozen=True)
class DomainDevices:
    pci: frozenset = frozenset()  # addresses "0000:3b:00.2"
    mdevs: frozenset = frozenset()  # uuids


def _pci_address(el):
    return "%04x:%02x:%02x.%x" % tuple(
        int(el.get(k, "0"), 0) for k in ("domain", "bus", "slot", "function")
    )


def domain_devices(domain):
    """DomainDevices of one domain (an element or its XML text)."""
    if isinstance(domain, str | bytes):
        domain = etree.fromstring(
            domain.encode() if isinstance(domain, str) else domain
        )
    pci, mdevs = set(), set()
    for hostdev in domain.iterfind("devices/hostdev[@mode='subsystem']"):
        address = hostdev.find("source/address")
        if address is None:
            continue
        if hostdev.get("type") == "pci":
            pci.add(_pci_address(address))
        elif hostdev.get("type") == "mdev" and address.get("uuid"):
            mdevs.add(address.get("uuid").lower())
    # an SR-IOV VF given as <interface type='hostdev'> is taken too
    for iface in domain.iterfind("devices/interface[@type='hostdev']"):
        address = iface.find("source/address[@type='pci']")
        if address is not None:
            pci.add(_pci_address(address))
    return DomainDevices(frozenset(pci), frozenset(mdevs))
