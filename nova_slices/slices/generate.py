"""Plan a host's slices from its hardware (pure).

``nova-slices generate-slices`` turns the host's NUMA topology and PCI
devices into the slice tree the libvirt-slices spec describes, so that an
operator no longer hand-writes a dozen templates that must agree with
each other and with the machine.  This module decides *what* the slices
are; :mod:`nova_slices.slices.generate_render` writes them as
configuration and templates.

The default layout:

* one slice per GPU, on the GPU's NUMA cell: the cell's whole cores
  (SMT siblings together) and its memory in pages of one size, divided
  equally among the cell's GPUs;
* one slice per NUMA cell and per socket holding more than one GPU, and
  one for the whole host, each holding exactly what its children hold
  plus the cells beneath it that have no GPU;
* linked by ``conflict_parent``: host > socket > cell > GPU, a level
  left out where it would hold the same as its only child.

Every slice is therefore inside its parent and disjoint from the slices
that are not its ancestors or descendants: no two guests can be given
one GPU, one pinned CPU or one page.  CPUs kept for the host run no
vCPU; they run the emulator threads of the slices of their cell (as in
the shipped templates).  Anything the host cannot give is refused with a
``generate.*`` code naming the option, the value and what would be valid.
"""

import collections
import dataclasses
import itertools

from nova_slices.cpuset import format_cpuset
from nova_slices.slices.generate_cells import (
    Options,
    Taken,
    cell_pages,
    check_reserved_cpus,
    choose_page_size,
    divide_cores,
    format_size,
    note_cores,
    refuse,
    reservation_shown,
    select_gpus,
    threads_per_core,
)

#: the planner's inputs and helpers, for its callers
__all__ = [
    "CellShare",
    "Options",
    "Plan",
    "PlannedSlice",
    "Taken",
    "format_size",
    "plan",
    "refuse",
]


@dataclasses.dataclass(frozen=True)
class CellShare:
    """What a slice holds of one host NUMA cell."""

    host_cell: int
    #: whole cores, each a tuple of its thread ids (siblings together)
    cores: tuple
    #: pages of the plan's page size
    pages: int
    memory_mib: int

    @property
    def cpus(self):
        return frozenset(itertools.chain.from_iterable(self.cores))


@dataclasses.dataclass(frozen=True)
class PlannedSlice:
    name: str
    #: "host", "socket", "cell" or "gpu"
    level: str
    parent: str | None
    #: PCI addresses passed through whole
    gpus: tuple
    cells: tuple  # of CellShare, by host cell
    emulator_cpus: frozenset
    #: sockets of the guest's CPU topology
    guest_sockets: int
    resource_class: str = ""

    @property
    def pinned_cpus(self):
        return frozenset().union(*(c.cpus for c in self.cells))

    @property
    def vcpus(self):
        return len(self.pinned_cpus)

    @property
    def memory_mib(self):
        return sum(c.memory_mib for c in self.cells)

    @property
    def host_cells(self):
        return tuple(c.host_cell for c in self.cells)


@dataclasses.dataclass(frozen=True)
class Plan:
    slices: tuple  # of PlannedSlice, every parent before its children
    page_size_kb: int
    #: the page size is the host's base page (no hugepages)
    base_pages: bool
    #: CPUs no slice pins: kept for the host (and emulator threads), or
    #: in a cell no slice uses
    host_cpus: frozenset
    #: the whole-PCI devices chosen as GPUs
    gpus: tuple
    notes: tuple = ()

    def children(self, name):
        return [s for s in self.slices if s.parent == name]


# -- the plan ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Node:
    name: str
    level: str
    gpus: tuple
    #: host cell -> CellShare
    content: dict
    children: tuple = ()


def _merge(nodes, extra=()):
    """The content of a parent: its children's and ``extra`` cells'."""
    out = {}
    for share in [s for n in nodes for s in n.content.values()] + list(extra):
        have = out.get(share.host_cell)
        if have is None:
            out[share.host_cell] = share
        else:
            out[share.host_cell] = CellShare(
                share.host_cell,
                tuple(sorted(have.cores + share.cores)),
                have.pages + share.pages,
                have.memory_mib + share.memory_mib,
            )
    return dict(sorted(out.items()))


def _group(name, level, children, extra=()):
    """A parent over ``children``, or the only child when it would hold
    the same."""
    content = _merge(children, extra)
    if len(children) == 1 and content == children[0].content:
        return children[0]
    gpus = tuple(g for c in children for g in c.gpus)
    return _Node(name, level, gpus, content, tuple(children))


def plan(topology, devices, options=None, taken=None):
    """The slices of this host under ``options`` (default: none given),
    beside what ``taken`` says the configuration gives away: a
    :class:`Plan`."""
    options = options or Options()
    taken = taken or Taken()
    notes = []
    if options.reserved_cpus is not None:
        check_reserved_cpus(topology, options.reserved_cpus)
    gpus = select_gpus(topology, devices, options, taken, notes)
    by_cell = collections.defaultdict(list)
    for gpu in gpus:
        by_cell[gpu.numa_node].append(gpu)
    cpu_cells = [c for c in topology.cells if c.cpus]
    memory_only = [c.id for c in topology.cells if not c.cpus]
    if memory_only:
        notes.append(
            f"cell(s) {format_cpuset(memory_only)} have no CPUs: no slice "
            "takes their memory"
        )
    size = choose_page_size(
        [topology.cell(c) for c in sorted(by_cell)], options, taken
    )
    threads = threads_per_core(cpu_cells)
    leaves, spare, kept_by_cell = {}, {}, {}
    for cell in cpu_cells:
        k = len(by_cell.get(cell.id, ()))
        kept, shares, left, odd = divide_cores(cell, k, options, threads)
        kept_by_cell[cell.id] = kept
        note_cores(notes, cell, k, left, odd, threads)
        pages = cell_pages(cell, k, size, options, taken, notes)
        if pages is None:
            continue
        mib = pages * size // 1024
        if k == 0:
            if shares[0]:
                spare[cell.id] = CellShare(cell.id, shares[0], pages, mib)
            else:
                notes.append(
                    f"cell {cell.id}: no core left for slices after "
                    f"{reservation_shown(options)}; no slice uses it"
                )
            continue
        leaves[cell.id] = [
            _Node(
                f"cell{cell.id}-gpu{i}",
                "gpu",
                (gpu.address,),
                {cell.id: CellShare(cell.id, shares[i], pages, mib)},
            )
            for i, gpu in enumerate(by_cell[cell.id])
        ]
    root = _tree(topology, leaves, spare)
    nodes = list(_walk(root, None))
    slices = _with_classes(
        [
            PlannedSlice(
                node.name,
                node.level,
                parent,
                node.gpus,
                tuple(node.content.values()),
                _emulator(node, kept_by_cell),
                _guest_sockets(node, topology),
            )
            for node, parent in nodes
        ]
    )
    base = all(
        size == min(p.size_kb for p in topology.cell(c).pages) for c in by_cell
    )
    return Plan(
        tuple(slices),
        size,
        base,
        # the root (first) holds every slice's CPUs
        topology.cpu_ids - slices[0].pinned_cpus,
        gpus,
        tuple(notes),
    )


def _tree(topology, leaves, spare):
    """host > socket > cell > GPU, levels that would repeat their only
    child left out."""
    under_host, sockets = [], collections.defaultdict(list)
    for cell in topology.cells:
        if cell.id not in leaves and cell.id not in spare:
            continue
        nodes = leaves.get(cell.id, [])
        if len(nodes) > 1:
            nodes = [_group(f"cell{cell.id}", "cell", nodes)]
        sockets[cell.socket].append((cell.id, nodes))
    extra_of_host = []
    for socket, members in sorted(
        sockets.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
    ):
        children = [n for _, nodes in members for n in nodes]
        extra = [spare[c] for c, _ in members if c in spare]
        gpus = sum(len(n.gpus) for n in children)
        if socket is not None and gpus > 1:
            under_host.append(
                _group(f"socket{socket}", "socket", children, extra)
            )
        else:
            under_host.extend(children)
            extra_of_host.extend(extra)
    return _group("host", "host", under_host, extra_of_host)


def _walk(node, parent):
    yield node, parent
    for child in node.children:
        yield from _walk(child, node.name)


def _emulator(node, kept_by_cell):
    """The host CPUs of the slice's cells, where its emulator threads
    run (shared with the other slices of those cells, never with a
    vCPU); the slice's own CPUs when its cells keep none, as Nova pins
    emulator threads by default."""
    kept = frozenset().union(*(kept_by_cell[c] for c in node.content))
    if kept:
        return kept
    return frozenset().union(*(s.cpus for s in node.content.values()))


def _guest_sockets(node, topology):
    """Host sockets the slice spans, when its cores divide equally among
    them (the guest topology must multiply out to its vCPUs); else 1."""
    per_socket = collections.Counter()
    for share in node.content.values():
        per_socket[topology.socket_of_cell(share.host_cell)] += len(
            share.cores
        )
    if None in per_socket or len(set(per_socket.values())) != 1:
        return 1
    return len(per_socket)


# -- resource classes -------------------------------------------------------


def _size_key(s):
    return (s.vcpus, s.memory_mib, len(s.cells))


def _memory_word(mib):
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def _with_classes(slices):
    """Slices with their resource class: ``CUSTOM_SLICE_<N>_GPU_V1``;
    when slices of N GPUs differ in size, the size is in the name
    (``CUSTOM_SLICE_1_GPU_14C_112G_V1``: vCPUs, memory; ``_2N``, guest
    NUMA cells, when only those differ); and when slices of one size sit
    at different places in the tree, which one class cannot (a class's
    slices share their ancestor classes), ``_SHAPE2``... tells them
    apart."""
    sizes = collections.defaultdict(set)
    for s in slices:
        sizes[len(s.gpus)].add(_size_key(s))
    stems = {}
    for s in slices:
        stem = f"CUSTOM_SLICE_{len(s.gpus)}_GPU"
        same = sizes[len(s.gpus)]
        if len(same) > 1:
            stem += f"_{s.vcpus}C_{_memory_word(s.memory_mib)}"
            if sum(k[:2] == _size_key(s)[:2] for k in same) > 1:
                stem += f"_{len(s.cells)}N"
        stems[s.name] = stem
    parent = {s.name: s.parent for s in slices}
    has_children = set(parent.values())
    final, shapes = {}, collections.defaultdict(list)
    for s in slices:  # parents first
        chain, cur = [], s.parent
        while cur is not None:
            chain.append(final[cur])
            cur = parent[cur]
        shape = (tuple(chain), s.name in has_children)
        seen = shapes[stems[s.name]]
        if shape not in seen:
            seen.append(shape)
        index = seen.index(shape)
        suffix = f"_SHAPE{index + 1}" if index else ""
        final[s.name] = f"{stems[s.name]}{suffix}_V1"
    return [
        dataclasses.replace(s, resource_class=final[s.name]) for s in slices
    ]
