"""How each NUMA cell is shared out among slices (pure).

Part of the planner of :mod:`nova_slices.slices.generate`: which devices
are GPUs, which page size backs slice memory, which whole cores each GPU
of a cell gets and which the host keeps, and how many pages.  Every
refusal here is a ``generate.*`` code naming the flag, the value and what
the host would accept.
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


def refuse(message, code, key, value):
    """A refusal of generate-slices: exit 2, code ``generate.<code>``."""
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


def threads_per_core(cells):
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


def reservation_shown(options):
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
            f"GPU(s); after {reservation_shown(options)} keeps "
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


def note_cores(notes, cell, k, left, odd, threads):
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


def cell_pages(cell, k, size, options, taken, notes):
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
