"""A host's usage, rebuilt from the records in its guests' domains (pure).

Every dynamic guest's domain records the cells its local claim took (see
:mod:`nova_slices.virt.metadata`); claiming them again, one guest at a
time, gives the usage the fitter needs, with no database of our own.
Claiming refuses a pCPU, page or device taken twice, so a host whose
domains were edited into a conflict is reported, naming both guests,
rather than used.
"""

from nova_slices.fit.claims import ClaimError, claim
from nova_slices.fit.model import Placement, Usage


def record_placement(record):
    """What a guest's local claim took: its cells and PCI devices."""
    return Placement(tuple(record.cells), tuple(record.pci))


def usage_of(topology, records, restrictions=None, devices=None):
    """Usage of ``records`` (GuestRecords), or ClaimError naming a guest.

    Records are claimed in name order, so the guest named in an error is
    the second of the two that collide, whatever order libvirt lists
    them in.
    """
    usage = Usage()
    owners = {}
    for record in sorted(records, key=lambda r: r.name):
        placement = record_placement(record)
        try:
            usage = claim(topology, usage, placement, restrictions, devices)
        except ClaimError as exc:
            others = sorted(
                {
                    owners[k]
                    for k in _keys(placement)
                    if k in owners and owners[k] != record.name
                }
            )
            raise ClaimError(
                f"guest {record.name} ({record.instance_uuid}) cannot be "
                f"counted: {exc.message}"
                + (f" (held by {', '.join(others)})" if others else ""),
                code="usage.conflict",
                value=record.name,
            ) from None
        for k in _keys(placement):
            owners[k] = record.name
    return usage


def _keys(placement):
    keys = {("pci", a) for a in placement.pci_devices}
    for c in placement.cells:
        cpus = (
            {p for _, p in c.cpu_pinning} | c.reserved_cpus | c.emulator_cpus
        )
        keys |= {("cpu", p) for p in cpus}
    return keys
