"""Claiming and releasing placements on a usage value, never oversold.

A claim adds a placement's pinned (and reserved, and emulator) CPUs,
shared vCPUs, memory, pages and devices to the usage; it refuses a CPU
already pinned, more pages than the pool holds (minus the host's
reservation), and a device already in use.  Release is the exact
inverse and refuses to release what is not held.  Usage can be rebuilt
from the placements of the guests that exist.
"""

from nova_slices.errors import NovaSlicesError, RequestError
from nova_slices.fit.model import CellUsage, Usage
from nova_slices.fit.pci import available_devices


class ClaimError(NovaSlicesError):
    exit_status = 1
    code = "claim.refused"


def _pool_for(cell, placement):
    if placement.pagesize_kb is not None:
        return placement.pagesize_kb
    sizes = sorted(p.size_kb for p in cell.pages)
    return sizes[0] if sizes else None


def cell_pages(cell, placement):
    """(page size KiB, pages, strict) one guest cell takes of ``cell``,
    or None when the host cell has no page pool.

    Memory comes from the cell's explicit page size, else its smallest
    pool.  It is *strict* -- counted against the pool, never overcommitted
    -- when the guest asked for a page size or its CPU policy pins
    (dedicated, mixed: every cell, pinned vCPUs or not), as Nova checks
    free pages only for those guests.
    """
    size = _pool_for(cell, placement)
    if size is None:
        return None
    strict = (
        placement.pagesize_kb is not None
        or placement.pinned_guest
        or bool(placement.cpu_pinning)
    )
    return size, placement.memory_mb * 1024 // size, strict


def held_cpus(cp):
    """Host CPUs a cell placement holds for itself: its pinned vCPUs'
    pCPUs, the ones reserved beside them, its isolated emulator pCPU."""
    return (
        frozenset(p for _, p in cp.cpu_pinning)
        | cp.reserved_cpus
        | cp.emulator_cpus
    )


def _apply(topology, usage, placement, sign, restrictions=None):
    cells = dict(usage.cells)
    for cp in placement.cells:
        cell = topology.cell(cp.host_cell)
        if cell is None:
            raise ClaimError(
                f"host cell {cp.host_cell} does not exist",
                code="claim.unknown-cell",
                value=cp.host_cell,
            )
        u = cells.get(cp.host_cell, CellUsage())
        cpus = held_cpus(cp)
        if sign > 0 and cpus & u.pinned_cpus:
            raise ClaimError(
                f"host CPU(s) {sorted(cpus & u.pinned_cpus)} of cell "
                f"{cell.id} are already pinned",
                code="claim.cpu-in-use",
                value=sorted(cpus & u.pinned_cpus),
            )
        if sign < 0 and not cpus <= u.pinned_cpus:
            raise ClaimError(
                f"host CPU(s) {sorted(cpus - u.pinned_cpus)} of cell "
                f"{cell.id} are not pinned; nothing to release",
                code="claim.not-held",
                value=sorted(cpus - u.pinned_cpus),
            )
        pages = dict(u.pages)
        taken = cell_pages(cell, cp)
        if taken is not None:
            size, count, strict = taken
            pages[size] = pages.get(size, 0) + sign * count
            pool = cell.pool(size)
            reserved = (
                restrictions.reserved(cell.id, size) if restrictions else 0
            )
            if (
                sign > 0
                and strict
                and pool is not None
                and pages[size] > pool.total - reserved
            ):
                raise ClaimError(
                    f"cell {cell.id} has {pool.total - reserved} pages of "
                    f"{size} KiB for guests; claiming {count} more would "
                    f"use {pages[size]}",
                    code="claim.not-enough-pages",
                    value=pages[size],
                )
            if pages[size] < 0:
                raise ClaimError(
                    f"cell {cell.id}: releasing {count} pages of {size} KiB "
                    "that are not used",
                    code="claim.not-held",
                    value=count,
                )
        memory = u.memory_mb + sign * cp.memory_mb
        cpu_usage = u.cpu_usage + sign * cp.shared_vcpus
        if memory < 0 or cpu_usage < 0:
            raise ClaimError(
                f"cell {cell.id}: releasing more than is used",
                code="claim.not-held",
            )
        pinned = u.pinned_cpus | cpus if sign > 0 else u.pinned_cpus - cpus
        cells[cp.host_cell] = CellUsage(
            frozenset(pinned),
            cpu_usage,
            memory,
            tuple(sorted((s, n) for s, n in pages.items() if n)),
        )
    devices = set(usage.pci_devices_in_use)
    wanted = set(placement.pci_devices)
    if sign > 0:
        if wanted & devices:
            raise ClaimError(
                f"PCI device(s) {sorted(wanted & devices)} already in use",
                code="claim.device-in-use",
                value=sorted(wanted & devices),
            )
        devices |= wanted
    else:
        if not wanted <= devices:
            raise ClaimError(
                f"PCI device(s) {sorted(wanted - devices)} are not in use",
                code="claim.not-held",
                value=sorted(wanted - devices),
            )
        devices -= wanted
    # a cell back to nothing is no cell at all: release inverts claim
    cells = {c: u for c, u in cells.items() if u != CellUsage()}
    return Usage(tuple(sorted(cells.items())), frozenset(devices))


def claim(topology, usage, placement, restrictions=None, devices=None):
    """Usage with ``placement`` added; ``devices`` (HostDevices) also
    refuses a PF whose VF is in use and a VF whose PF is."""
    if devices is not None and placement.pci_devices:
        free = {
            d.address
            for d in available_devices(devices, usage.pci_devices_in_use)
        }
        tied = sorted(
            set(placement.pci_devices) - free - set(usage.pci_devices_in_use)
        )
        if tied:
            raise ClaimError(
                f"PCI device(s) {tied} are tied to a device in use (a PF "
                "and its VFs are never given out apart)",
                code="claim.device-in-use",
                value=tied,
            )
    return _apply(topology, usage, placement, +1, restrictions)


def check_usage(topology, usage):
    """Refuse usage that does not describe this host (exit status 2)."""
    for cell_id, u in usage.cells:
        cell = topology.cell(cell_id)
        if cell is None:
            raise RequestError(
                f"usage names cell {cell_id}, which this host does not have",
                code="usage.invalid",
                key="cells",
                value=cell_id,
            )
        stray = sorted(u.pinned_cpus - cell.cpu_ids)
        if stray:
            raise RequestError(
                f"usage of cell {cell_id} pins CPU(s) {stray}, which are not "
                f"CPUs of that cell",
                code="usage.invalid",
                key=f"cells.{cell_id}.pinned_cpus",
                value=stray,
            )
        sizes = {p.size_kb for p in cell.pages}
        unknown = sorted(s for s, _ in u.pages if s not in sizes)
        if unknown:
            raise RequestError(
                f"usage of cell {cell_id} uses page size(s) {unknown} KiB, "
                f"which that cell has no pool of",
                code="usage.invalid",
                key=f"cells.{cell_id}.pages",
                value=unknown,
            )


def release(topology, usage, placement):
    return _apply(topology, usage, placement, -1)


def rebuild(topology, placements, restrictions=None):
    usage = Usage()
    for placement in placements:
        usage = claim(topology, usage, placement, restrictions)
    return usage


_USAGE_KEYS = ("cells", "pci_devices_in_use")
_CELL_KEYS = ("pinned_cpus", "cpu_usage", "memory_mb", "pages")


def usage_from_dict(data, source="usage file"):
    """The usage file format of DESIGN.md section 5, read strictly.

    Usage is subtracted from the host: a negative count would add
    capacity, and a misspelt key would silently count as unused, so
    both are refused, naming the key (a JSON path such as
    ``cells.3.memory_mb``) and the value.  ``source`` names the file.
    """

    def bad(key, value, why):
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return RequestError(
            f"{source}: {key} = {shown}: {why}",
            code="usage.invalid",
            key=key,
            value=value,
        )

    def count(key, value):
        # bool is an int to Python, not a count to anyone
        if type(value) is not int or value < 0:
            raise bad(key, value, "must be a whole number >= 0")
        return value

    def mapping(key, value, known=None):
        if not isinstance(value, dict):
            raise bad(key, value, "must be an object")
        for k in value:
            if known is not None and k not in known:
                raise bad(
                    f"{key}.{k}" if key else k,
                    value[k],
                    f"unknown key; valid keys: {', '.join(known)}",
                )
        return value

    def listing(key, value):
        if not isinstance(value, list):
            raise bad(key, value, "must be a list")
        return value

    if not isinstance(data, dict):
        raise bad("usage", type(data).__name__, "expected an object")
    mapping("", data, _USAGE_KEYS)
    cells = []
    for cid, raw in mapping("cells", data.get("cells", {})).items():
        where = f"cells.{cid}"
        if not (cid.isdecimal() and cid.isascii()):
            raise bad(where, raw, 'a cell id is a number such as "3"')
        raw = mapping(where, raw, _CELL_KEYS)
        pinned = listing(f"{where}.pinned_cpus", raw.get("pinned_cpus", []))
        pages = []
        for size, n in mapping(f"{where}.pages", raw.get("pages", {})).items():
            if not (size.isdecimal() and size.isascii()) or int(size) == 0:
                raise bad(
                    f"{where}.pages.{size}", n, "a page size is KiB, e.g. 2048"
                )
            pages.append((int(size), count(f"{where}.pages.{size}", n)))
        cells.append(
            (
                int(cid),
                CellUsage(
                    frozenset(
                        count(f"{where}.pinned_cpus", c) for c in pinned
                    ),
                    count(f"{where}.cpu_usage", raw.get("cpu_usage", 0)),
                    count(f"{where}.memory_mb", raw.get("memory_mb", 0)),
                    tuple(sorted(pages)),
                ),
            )
        )
    if len({cid for cid, _ in cells}) != len(cells):
        raise bad("cells", data["cells"], "a cell is listed twice")
    in_use = listing("pci_devices_in_use", data.get("pci_devices_in_use", []))
    for address in in_use:
        if not isinstance(address, str):
            raise bad(
                "pci_devices_in_use",
                address,
                'a device is a PCI address such as "0000:3b:00.0"',
            )
    return Usage(tuple(sorted(cells)), frozenset(in_use))


__all__ = ["ClaimError", "claim", "release", "rebuild", "usage_from_dict"]
