"""Values the fitter takes and returns: usage, placements, reasons.

All immutable.  Usage is what is already taken on the host; a Placement is
one guest's answer; a Reason explains one thing that does not fit, with a
stable code (tests assert on codes, never on message text).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class CellUsage:
    pinned_cpus: frozenset = frozenset()
    #: shared vCPUs placed on the cell (Nova's ``cpu_usage``: checked
    #: only against Limits, otherwise overcommit is Placement's business)
    cpu_usage: int = 0
    #: memory of every guest on the cell, hugepages too (Nova's
    #: ``memory_usage``)
    memory_mb: int = 0
    #: ((page size KiB, pages used), ...) sorted
    pages: tuple = ()

    def pages_used(self, size_kb):
        return dict(self.pages).get(size_kb, 0)


@dataclasses.dataclass(frozen=True)
class Usage:
    #: ((cell id, CellUsage), ...) sorted; missing cells are unused
    cells: tuple = ()
    pci_devices_in_use: frozenset = frozenset()

    def cell(self, cell_id):
        return dict(self.cells).get(cell_id, CellUsage())

    def to_dict(self):
        return {
            "cells": {
                str(cid): {
                    "pinned_cpus": sorted(u.pinned_cpus),
                    "cpu_usage": u.cpu_usage,
                    "memory_mb": u.memory_mb,
                    "pages": {str(s): n for s, n in u.pages},
                }
                for cid, u in self.cells
            },
            "pci_devices_in_use": sorted(self.pci_devices_in_use),
        }


@dataclasses.dataclass(frozen=True)
class Limits:
    """Nova's per-cell over-subscription limits (``NUMATopologyLimits``).

    Nova's scheduler filter and compute claim pass the host's CPU and RAM
    allocation ratios, and ``_numa_fit_instance_cell`` then refuses a
    host cell to a guest cell of a shared, mixed or unset CPU policy
    whose shared vCPUs or memory would take the cell's ``cpu_usage``
    past ``shared CPUs x cpu ratio`` or its ``memory_mb`` (Nova's
    ``memory_usage``: every guest's memory on the cell, hugepages too)
    past ``memory x ram ratio``.  No limits: no such check."""

    cpu_allocation_ratio: float
    ram_allocation_ratio: float


@dataclasses.dataclass(frozen=True)
class CellPlacement:
    guest_cell: int
    host_cell: int
    #: ((vCPU, host CPU), ...) for pinned vCPUs
    cpu_pinning: tuple
    #: host CPUs the guest's shared vCPUs float over
    shared_cpus: frozenset
    #: host CPUs reserved with the pinned ones but not used (isolate)
    reserved_cpus: frozenset
    emulator_cpus: frozenset
    memory_mb: int
    pagesize_kb: int | None
    #: shared vCPUs placed here
    shared_vcpus: int = 0
    #: the guest's CPU policy pins (dedicated, mixed): this cell's memory
    #: is never overcommitted, even without pinned vCPUs of its own
    pinned_guest: bool = False

    def to_dict(self):
        return {
            "guest_cell": self.guest_cell,
            "host_cell": self.host_cell,
            "cpu_pinning": {str(v): p for v, p in self.cpu_pinning},
            "shared_cpus": sorted(self.shared_cpus),
            "reserved_cpus": sorted(self.reserved_cpus),
            "emulator_cpus": sorted(self.emulator_cpus),
            "memory_mb": self.memory_mb,
            "pagesize_kb": self.pagesize_kb,
        }


@dataclasses.dataclass(frozen=True)
class Placement:
    cells: tuple  # of CellPlacement, by guest cell
    pci_devices: tuple = ()  # addresses

    def to_dict(self):
        return {
            "fits": True,
            "cells": [c.to_dict() for c in self.cells],
            "pci_devices": list(self.pci_devices),
        }


@dataclasses.dataclass(frozen=True)
class Reason:
    code: str
    message: str
    host_cell: int | None = None
    guest_cell: int | None = None
    requested: object = None
    available: object = None

    def to_dict(self):
        d = {"code": self.code, "message": self.message}
        for key in ("host_cell", "guest_cell", "requested", "available"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d


@dataclasses.dataclass(frozen=True)
class Rejection:
    reasons: tuple

    def to_dict(self):
        return {"fits": False, "reasons": [r.to_dict() for r in self.reasons]}
