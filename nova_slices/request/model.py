"""The normalized guest request every later stage consumes.

Immutable, and complete: every vCPU sits in exactly one guest cell (when
the guest has cells) and the cells' memory adds up to the flavor's.
"""

import dataclasses

SMALL, LARGE, ANY = "small", "large", "any"


@dataclasses.dataclass(frozen=True)
class GuestCell:
    id: int
    cpus: frozenset
    memory_mb: int
    #: the vCPUs of this cell pinned 1:1 (all of them when dedicated)
    pcpus: frozenset = frozenset()
    #: explicit hw:numa_node.N pin, else None
    host_cell: int | None = None

    def to_dict(self):
        return {
            "id": self.id,
            "cpus": sorted(self.cpus),
            "pcpus": sorted(self.pcpus),
            "memory_mb": self.memory_mb,
            "host_cell": self.host_cell,
        }


@dataclasses.dataclass(frozen=True)
class PciAlias:
    name: str
    count: int


@dataclasses.dataclass(frozen=True)
class GuestRequest:
    vcpus: int
    memory_mb: int
    cells: tuple = ()  # of GuestCell
    cpu_policy: str | None = None
    cpu_thread_policy: str | None = None
    emulator_threads_policy: str | None = None
    #: vCPUs with realtime priority (None: realtime off)
    realtime_cpus: frozenset | None = None
    #: "small", "large", "any", a size in KiB, or None
    pagesize: object = None
    locked_memory: bool | None = None
    pci_numa_affinity_policy: str | None = None
    pci_aliases: tuple = ()  # of PciAlias
    #: ((group suffix, resource class), amount) from resources*:RC
    resources: tuple = ()
    #: ((group suffix, trait), "required"|"forbidden") from trait*:NAME
    traits: tuple = ()
    #: Placement's group_policy (none|isolate) for numbered groups
    group_policy: str | None = None
    #: keys this package does not interpret (passed to Nova untouched)
    ignored: tuple = ()

    @property
    def dedicated_cpus(self):
        return frozenset().union(*(c.pcpus for c in self.cells))

    def to_dict(self):
        return {
            "vcpus": self.vcpus,
            "memory_mb": self.memory_mb,
            "cells": [c.to_dict() for c in self.cells],
            "cpu_policy": self.cpu_policy,
            "cpu_thread_policy": self.cpu_thread_policy,
            "emulator_threads_policy": self.emulator_threads_policy,
            "realtime_cpus": (
                None
                if self.realtime_cpus is None
                else sorted(self.realtime_cpus)
            ),
            "pagesize": self.pagesize,
            "locked_memory": self.locked_memory,
            "pci_numa_affinity_policy": self.pci_numa_affinity_policy,
            "pci_aliases": [
                {"alias": a.name, "count": a.count} for a in self.pci_aliases
            ],
            "resources": [
                {"group": g, "resource_class": rc, "amount": n}
                for (g, rc), n in self.resources
            ],
            "traits": [
                {"group": g, "trait": t, "value": v}
                for (g, t), v in self.traits
            ],
            "group_policy": self.group_policy,
            "ignored": list(self.ignored),
        }
