"""The host's NUMA topology as immutable values.

Everything that places guests reads this model and nothing else about the
host, so it is exact (CPU ids, siblings, page pools per cell) and says
"unknown" (``None``) rather than guessing: a CPU libvirt reports without a
``socket_id`` has socket ``None``, and so does a cell whose CPUs span
sockets.  Memory-only cells (HBM in flat mode, CXL, GPU memory) are kept as
cells with no CPUs, ``memory_only`` set, and the socket of the nearest
CPU-bearing cell by NUMA distance (ties: lowest cell id; no distances or
no CPU-bearing cell: ``None``).
"""

import dataclasses
import functools


@dataclasses.dataclass(frozen=True)
class Cpu:
    id: int
    socket: int | None = None
    die: int | None = None
    cluster: int | None = None
    core: int | None = None
    #: thread siblings including this CPU itself
    siblings: frozenset = frozenset()


@dataclasses.dataclass(frozen=True)
class PagePool:
    size_kb: int
    total: int

    @property
    def total_kb(self):
        return self.size_kb * self.total


@dataclasses.dataclass(frozen=True)
class Cell:
    id: int
    cpus: tuple  # of Cpu, by id
    memory_kb: int
    pages: tuple  # of PagePool, by size
    #: (cell id, distance) pairs, by cell id; empty when libvirt has none
    distances: tuple = ()
    socket: int | None = None

    @property
    def memory_mb(self):
        return self.memory_kb // 1024

    @functools.cached_property
    def cpu_ids(self):
        # cached: the fitter asks once per CPU, which made a fit on a
        # 65,536-CPU host quadratic (80 s); values are immutable
        return frozenset(c.id for c in self.cpus)

    @property
    def memory_only(self):
        return not self.cpus

    @property
    def sockets(self):
        """Sockets of this cell's CPUs (None among them when unknown)."""
        return frozenset(c.socket for c in self.cpus)

    def siblings(self):
        """Thread-sibling groups of this cell, each sorted, by first id."""
        groups = {tuple(sorted(c.siblings or {c.id})) for c in self.cpus}
        return sorted(groups)

    def pool(self, size_kb):
        for p in self.pages:
            if p.size_kb == size_kb:
                return p
        return None

    def distance(self, other):
        return dict(self.distances).get(other)


@dataclasses.dataclass(frozen=True)
class HostTopology:
    cells: tuple  # of Cell, by id

    @property
    def sockets(self):
        """Known socket ids of the host's CPUs, sorted."""
        return sorted(
            {
                c.socket
                for cell in self.cells
                for c in cell.cpus
                if c.socket is not None
            }
        )

    @property
    def cpus(self):
        # a new dict each time: callers may change it
        return {c.id: c for cell in self.cells for c in cell.cpus}

    @functools.cached_property
    def cpu_ids(self):
        return frozenset(c.id for cell in self.cells for c in cell.cpus)

    @functools.cached_property
    def _cells_by_id(self):
        return {c.id: c for c in self.cells}

    def cell(self, cell_id):
        # a dict: the fitter looks up every (guest, host) cell pair
        return self._cells_by_id.get(cell_id)

    def cell_of_cpu(self, cpu_id):
        for cell in self.cells:
            if cpu_id in cell.cpu_ids:
                return cell
        return None

    def socket_of_cell(self, cell_id):
        cell = self.cell(cell_id)
        return None if cell is None else cell.socket

    @functools.cached_property
    def cells_without_socket(self):
        """Ids of the cells whose socket is unknown, sorted.

        Nova refuses to widen PCI affinity to a socket when any host cell
        has no socket (``PciDeviceStats._filter_pools_for_socket_affinity``);
        :func:`nova_slices.fit.pci.policy_sockets` follows it.  A
        memory-only cell counts only when no distance names its nearest
        CPU-bearing cell (see the module docstring).
        """
        return tuple(c.id for c in self.cells if c.socket is None)
