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
from nova_slices.errors import RequestError
from nova_slices.host.devices import TYPE_VF

#: PCI class code prefix of display controllers (VGA, XGA, 3D, other)
DISPLAY_CLASS = "03"
#: MiB per cell kept for the host when guests use the host's base pages
#: (host processes, QEMU and VFIO overhead come from that same pool)
BASE_PAGE_RESERVED_MB = 4096


@dataclasses.dataclass(frozen=True)
class Options:
    """The operator's choices (see generate_options for the flags)."""

    #: ("id", vendor, product) or ("address", address) selectors
    gpus: tuple = ()
    #: PCI class code prefixes, lower-case hex ("03", "0302")
    gpu_classes: tuple = ()
    reserved_cores: int | None = None
    reserved_cpus: frozenset | None = None
    reserved_memory_mb: int | None = None
    page_size_kb: int | None = None


@dataclasses.dataclass(frozen=True)
class Taken:
    """What the host's configuration already gives guests another way."""

    #: mdev parent address -> the option that holds it
    mdev_parents: dict = dataclasses.field(default_factory=dict)
    #: (cell, page size KiB) -> pages ``[DEFAULT] reserved_huge_pages``
    #: keeps
    reserved_pages: dict = dataclasses.field(default_factory=dict)


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
    #: CPUs no slice pins: the host's, and the emulator threads'
    host_cpus: frozenset
    #: the whole-PCI devices chosen as GPUs
    gpus: tuple
    notes: tuple = ()

    def children(self, name):
        return [s for s in self.slices if s.parent == name]


def refuse(message, code, key, value):
    return RequestError(message, code=f"generate.{code}", key=key, value=value)


def format_size(kib):
    """4 -> '4K', 2048 -> '2M', 1048576 -> '1G'."""
    for unit, size in (("G", 1024 * 1024), ("M", 1024)):
        if kib % size == 0:
            return f"{kib // size}{unit}"
    return f"{kib}K"


# -- which devices are GPUs -----------------------------------------------


def _classes(options):
    """The class prefixes that select GPUs: the option's; by default the
    display controllers, unless ``--gpu`` names the devices."""
    if options.gpu_classes or options.gpus:
        return options.gpu_classes
    return (DISPLAY_CLASS,)


def _named(device, selector):
    kind, *values = selector
    if kind == "address":
        return device.address == values[0]
    return (device.vendor_id, device.product_id) == tuple(values)


def _shown(selector):
    kind, *values = selector
    return ":".join(values) if kind == "id" else values[0]


def _by_class(device, options):
    return any(
        (device.class_id or "").startswith(c) for c in _classes(options)
    )


def _is_gpu(device, options, taken):
    """``--gpu`` takes the devices it names whatever else holds them;
    ``--gpu-class`` leaves out VFs and the configuration's mdev parents
    (a GPU split into vGPUs is shared by design)."""
    if any(_named(device, sel) for sel in options.gpus):
        return True
    return (
        device.dev_type != TYPE_VF
        and device.address not in taken.mdev_parents
        and _by_class(device, options)
    )


def select_gpus(topology, devices, options, taken, notes):
    """The GPUs, by (cell, address); refused when none or misplaced."""
    for selector in options.gpus:
        if not any(_named(d, selector) for d in devices.pci):
            raise refuse(
                f"--gpu {_shown(selector)} matches no PCI device of this "
                "host; the display controllers here are: "
                + _display_devices(devices),
                "gpu-not-found",
                "--gpu",
                _shown(selector),
            )
    gpus = [d for d in devices.pci if _is_gpu(d, options, taken)]
    for device in devices.pci:
        if device.address in taken.mdev_parents and device not in gpus:
            if _by_class(device, options):
                notes.append(
                    f"{device.address} ({device.vendor_id}:"
                    f"{device.product_id}) stays with "
                    f"{taken.mdev_parents[device.address]} for mdevs; "
                    f"--gpu {device.address} would make it a slice GPU"
                )
    if not gpus:
        chosen = (
            "--gpu " + ", ".join(map(_shown, options.gpus))
            if options.gpus
            else "--gpu-class " + ", ".join(_classes(options))
        )
        raise refuse(
            f"no GPU found: no PCI device matches {chosen} (the mdev "
            "parents of [devices] are left to them); name the devices with "
            "--gpu VENDOR:PRODUCT or --gpu ADDRESS, or their class with "
            "--gpu-class; the display controllers here are: "
            + _display_devices(devices),
            "no-gpu",
            "--gpu" if options.gpus else "--gpu-class",
            chosen.split(" ", 1)[1],
        )
    for gpu in gpus:
        _check_gpu_cell(topology, gpu)
    return tuple(sorted(gpus, key=lambda d: (d.numa_node, d.address)))


def _display_devices(devices):
    found = [
        f"{d.address} ({d.vendor_id}:{d.product_id}, class {d.class_id})"
        for d in devices.pci
        if (d.class_id or "").startswith(DISPLAY_CLASS)
    ]
    return ", ".join(found) or "none"


def _check_gpu_cell(topology, gpu):
    if gpu.numa_node is None:
        raise refuse(
            f"GPU {gpu.address} has no NUMA cell (libvirt reports <numa "
            "node> absent or -1), so no slice can be placed beside it; "
            "leave it out by naming the other GPUs with --gpu, or fix the "
            "firmware's proximity table (_PXM)",
            "gpu-numa-unknown",
            "--gpu",
            gpu.address,
        )
    cell = topology.cell(gpu.numa_node)
    if cell is None or not cell.cpus:
        raise refuse(
            f"GPU {gpu.address} is on NUMA cell {gpu.numa_node}, which has "
            "no CPUs on this host; a slice pins vCPUs on its GPU's cell: "
            "leave it out by naming the other GPUs with --gpu",
            "gpu-cell-without-cpus",
            "--gpu",
            gpu.address,
        )


# -- pages ------------------------------------------------------------------


def _available_pages(cell, size_kb, options, taken):
    """Pages of ``size_kb`` in ``cell`` left for slices; None: no pool."""
    pool = cell.pool(size_kb)
    if pool is None:
        return None
    base = min(p.size_kb for p in cell.pages)
    reserved_mb = options.reserved_memory_mb
    if reserved_mb is None:
        reserved_mb = BASE_PAGE_RESERVED_MB if size_kb == base else 0
    kept = taken.reserved_pages.get((cell.id, size_kb), 0)
    kept += -(-reserved_mb * 1024 // size_kb)
    return pool.total - kept


def choose_page_size(gpu_cells, options, taken):
    """The page size: the option, or the largest every GPU cell has
    pages of after reservations."""
    common = None
    for cell in gpu_cells:
        sizes = {
            p.size_kb
            for p in cell.pages
            if (_available_pages(cell, p.size_kb, options, taken) or 0) > 0
        }
        common = sizes if common is None else common & sizes
    valid = ", ".join(format_size(s) for s in sorted(common or ())) or "none"
    size = options.page_size_kb
    if size is None:
        if not common:
            raise refuse(
                "no page size has pages left for slices on every GPU cell "
                f"(cells {format_cpuset(c.id for c in gpu_cells)}) after "
                "--reserved-memory-mb and [DEFAULT] reserved_huge_pages; "
                "lower --reserved-memory-mb",
                "not-enough-memory",
                "--page-size",
                None,
            )
        return max(common)
    if size not in common:
        lacking = [
            c.id
            for c in gpu_cells
            if (_available_pages(c, size, options, taken) or 0) <= 0
        ]
        raise refuse(
            f"--page-size {format_size(size)}: GPU cell(s) "
            f"{format_cpuset(lacking)} have no {format_size(size)} pages "
            "left for slices (after --reserved-memory-mb and [DEFAULT] "
            f"reserved_huge_pages); valid here: {valid}",
            "page-size-missing",
            "--page-size",
            format_size(size),
        )
    return size


def _whole_mib(pages, size_kb):
    """``pages`` rounded down so that they make whole MiB."""
    if size_kb >= 1024:
        return pages
    return pages * size_kb // 1024 * 1024 // size_kb


# -- CPUs -------------------------------------------------------------------


def _threads_per_core(cells):
    """The host's usual SMT width: the commonest sibling group size."""
    sizes = collections.Counter(
        len(g) for cell in cells for g in cell.siblings()
    )
    return sizes.most_common(1)[0][0]


def check_reserved_cpus(topology, reserved):
    """``--reserved-cpus`` names CPUs of this host, in whole cores."""
    unknown = sorted(reserved - topology.cpu_ids)
    if unknown:
        raise refuse(
            f"--reserved-cpus {format_cpuset(reserved)}: CPU(s) "
            f"{format_cpuset(unknown)} are not CPUs of this host; valid: "
            f"{format_cpuset(topology.cpu_ids)}",
            "reserved-cpus-invalid",
            "--reserved-cpus",
            format_cpuset(reserved),
        )
    cpus = topology.cpus
    partial = sorted(
        c for c in reserved if not (cpus[c].siblings or {c}) <= reserved
    )
    if partial:
        core = sorted(cpus[partial[0]].siblings)
        raise refuse(
            f"--reserved-cpus {format_cpuset(reserved)} keeps CPU "
            f"{partial[0]} but not all of its core ({format_cpuset(core)}); "
            "slices pin whole cores, so keep whole cores: add "
            f"{format_cpuset(set(core) - reserved)}",
            "reserved-cpus-partial-core",
            "--reserved-cpus",
            format_cpuset(reserved),
        )


def _option_shown(options):
    if options.reserved_cpus is not None:
        return f"--reserved-cpus {format_cpuset(options.reserved_cpus)}"
    if options.reserved_cores is not None:
        return f"--reserved-cores {options.reserved_cores}"
    return "the default (one core per GPU, one in a cell without GPUs)"


def divide_cores(cell, k, options, threads):
    """(CPUs kept for the host, k shares of whole cores) of one cell; a
    cell without GPUs (k == 0) gives one share to its parents."""
    groups = cell.siblings()
    cores = [g for g in groups if len(g) == threads]
    odd = [g for g in groups if len(g) != threads]
    if options.reserved_cpus is not None:
        kept = [c for c in cores if set(c) & options.reserved_cpus]
    elif options.reserved_cores is not None:
        kept = cores[: options.reserved_cores]
    elif k == 0:
        kept = cores[:1]
    else:
        # one core at the start of each GPU's share, as the shipped
        # templates keep cores 0 and 8 of a 16-core cell with 2 GPUs
        step = len(cores) // k
        kept = [cores[i * step] for i in range(k)] if step > 1 else cores
    usable = [c for c in cores if c not in kept]
    parts = max(k, 1)
    each = len(usable) // parts
    if k and each == 0:
        raise refuse(
            f"NUMA cell {cell.id} has {len(cores)} whole cores for {k} "
            f"GPU(s); after {_option_shown(options)} keeps "
            f"{len(kept)} for the host, {len(usable)} are left and every "
            "GPU's slice needs at least one: keep fewer "
            f"(--reserved-cores at most {len(cores) - k}, or "
            "--reserved-cpus naming fewer cores)",
            "not-enough-cpus",
            "--reserved-cores"
            if options.reserved_cpus is None
            else "--reserved-cpus",
            len(kept),
        )
    shares = [tuple(usable[i * each : (i + 1) * each]) for i in range(parts)]
    left = usable[parts * each :]
    kept_cpus = frozenset(itertools.chain.from_iterable(kept + left + odd))
    return kept_cpus, shares, left, odd


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


def plan(topology, devices, options=Options(), taken=Taken()):
    """The slices of this host under ``options``: a :class:`Plan`."""
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
    threads = _threads_per_core(cpu_cells)
    leaves, spare, kept_by_cell = {}, {}, {}
    for cell in cpu_cells:
        k = len(by_cell.get(cell.id, ()))
        kept, shares, left, odd = divide_cores(cell, k, options, threads)
        kept_by_cell[cell.id] = kept
        _note_cores(notes, cell, k, left, odd, threads)
        pages = _cell_pages(cell, k, size, options, taken, notes)
        if pages is None:
            continue
        mib = pages * size // 1024
        if k == 0:
            if shares[0]:
                spare[cell.id] = CellShare(cell.id, shares[0], pages, mib)
            else:
                notes.append(
                    f"cell {cell.id}: no core left for slices after "
                    f"{_option_shown(options)}; no slice uses it"
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
        frozenset().union(*kept_by_cell.values()),
        gpus,
        tuple(notes),
    )


def _note_cores(notes, cell, k, left, odd, threads):
    if left and k:
        notes.append(
            f"cell {cell.id}: core(s) {format_cpuset(c[0] for c in left)} "
            f"kept for the host: the cores left do not divide equally "
            f"among {k} GPUs"
        )
    if odd:
        notes.append(
            f"cell {cell.id}: core(s) {format_cpuset(g[0] for g in odd)} "
            f"kept for the host: they do not have {threads} thread(s) "
            "like the host's other cores"
        )


def _cell_pages(cell, k, size, options, taken, notes):
    """Pages of ``size`` per GPU of ``cell`` (all of them when k == 0),
    whole MiB; None for a cell without GPUs that has none."""
    available = _available_pages(cell, size, options, taken)
    each = _whole_mib(max(available or 0, 0) // max(k, 1), size)
    if each > 0:
        return each
    if k == 0:
        notes.append(
            f"cell {cell.id}: no {format_size(size)} pages left for slices; "
            "no slice uses it"
        )
        return None
    raise refuse(
        f"NUMA cell {cell.id} has {max(available or 0, 0)} "
        f"{format_size(size)} pages left for slices (after "
        "--reserved-memory-mb and [DEFAULT] reserved_huge_pages) for "
        f"{k} GPU(s): not a page (or a whole MiB) each; use another "
        "--page-size or keep less memory with --reserved-memory-mb",
        "not-enough-memory",
        "--reserved-memory-mb",
        options.reserved_memory_mb,
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
