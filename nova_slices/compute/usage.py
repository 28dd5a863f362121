"""A host's usage, rebuilt from the records in its guests' domains (pure).

Every dynamic guest's domain records the cells its local claim took (see
:mod:`nova_slices.virt.metadata`); claiming them again, one guest at a
time, gives the usage the fitter needs, with no database of our own.
Claiming refuses a pCPU, page or device taken twice, so a host whose
domains were edited into a conflict is reported, naming both guests,
rather than used.
"""

import dataclasses

from nova_slices.fit.claims import ClaimError, cell_pages, claim, held_cpus
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
        cpus = held_cpus(c)
        keys |= {("cpu", p) for p in cpus}
    return keys


def record_holdings(record, topology, from_xml):
    """A dynamic guest's Holdings: its CPUs and strict pages as its local
    claim took them (``record``), its devices as its XML holds them
    (``from_xml``, a :class:`~nova_slices.virt.holdings.Holdings`).

    Its shared vCPUs float over CPUs other guests float over too, and its
    emulator threads run on its own CPUs unless isolated (then they are in
    the record's ``emulator_cpus``, held like pinned ones).
    """
    pinned = frozenset()
    pages = {}
    for c in record.cells:
        pinned |= held_cpus(c)
        cell = topology.cell(c.host_cell)
        taken = cell_pages(cell, c) if cell is not None else None
        if taken is not None and taken[2]:
            key = (c.host_cell, taken[0])
            pages[key] = pages.get(key, 0) + taken[1]
    return dataclasses.replace(
        from_xml,
        pinned_cpus=pinned,
        emulator_cpus=frozenset(),
        pages=tuple(sorted(pages.items())),
    )
