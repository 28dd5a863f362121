"""An independent validity checker for the fitter's placements.

Written from the rules of the issue (Nova's semantics), not from
``nova_slices.fit``: it imports only the host and request models and reads
the fitter's values (Placement, CellPlacement, Usage) by attribute.  Every
test that obtains a placement runs :func:`check_placement` on it.

The rules:

* one distinct, existing host cell per guest cell; explicit
  ``hw:numa_node.N`` pins honoured; memory-only cells never host vCPUs;
* every pinned vCPU pinned exactly once, to a CPU of the host cell's
  dedicated pool (``cpu_dedicated_set``, or every CPU when neither set is
  configured), not pinned already, and no host CPU used twice;
* shared vCPUs float over a non-empty part of the cell's shared pool
  (``cpu_shared_set``, or every CPU when neither set is configured), no
  more shared vCPUs than that pool has CPUs, and never over a CPU the
  guest itself pins, reserves or gives its emulator;
* thread policies act on pinned vCPUs: ``isolate`` leaves every sibling
  of a pinned CPU free for nobody (in ``reserved_cpus``); ``require``
  pins onto SMT cores, sibling threads together (at most one pinned CPU
  without a pinned sibling); ``prefer``/none: anything;
* ``hw:emulator_threads_policy=isolate``: exactly one emulator CPU, from
  the dedicated pool, free, distinct from everything else (so never a
  reserved sibling of an ``isolate`` guest's pinned CPU);
* memory: the page size the request allows (explicit, smallest pool for
  ``small``, any but the smallest for ``large``, any for ``any``), the
  memory a multiple of it, enough free pages after usage and
  ``reserved_huge_pages``; without a page size every cell of a guest
  whose CPU policy pins (dedicated, mixed) needs free small-page memory,
  a shared guest's cell fits in the small pool's total;
* PCI: chosen devices distinct, existing, free (a PF with a VF in use or
  a VF of a PF in use is not free), as many as asked, assignable to the
  requests by alias and NUMA policy relative to the chosen host cells
  (``required``: on one of them; ``legacy``: that or no NUMA information;
  ``socket``: the device's known socket is one of theirs; ``preferred``:
  any, but as many on the guest's cells as any valid choice could have).
  A guest without NUMA cells has no affinity.
"""

import functools

from nova_slices.host.devices import TYPE_PF, TYPE_VF
from nova_slices.host.topology import Cell, Cpu, HostTopology, PagePool
from nova_slices.request.model import ANY, LARGE, SMALL

# -- building hosts for tests -------------------------------------------------


def smt_groups(first, cores, threads):
    """Sibling groups of ``cores`` cores with ``threads`` threads each,
    numbered from ``first`` (core k holds first+k*threads ...)."""
    return [
        tuple(range(first + k * threads, first + (k + 1) * threads))
        for k in range(cores)
    ]


def make_cell(cid, groups=(), socket=0, small_mb=4096, huge=(), pools=True):
    """A host cell with the given sibling groups and page pools.

    ``huge`` is ((size KiB, count), ...); the 4 KiB pool holds
    ``small_mb``; ``pools=False`` gives a cell without any page pool (its
    memory is ``small_mb``).
    """
    cpus = sorted(
        (
            Cpu(c, socket=socket, core=min(g), siblings=frozenset(g))
            for g in groups
            for c in g
        ),
        key=lambda c: c.id,
    )
    memory_kb = small_mb * 1024 + sum(s * n for s, n in huge)
    pages = ()
    if pools:
        pages = tuple(
            PagePool(s, n)
            for s, n in sorted(((4, small_mb * 256),) + tuple(huge))
        )
    return Cell(cid, tuple(cpus), memory_kb, pages, socket=socket)


def make_host(*cells):
    return HostTopology(tuple(sorted(cells, key=lambda c: c.id)))


# -- reading the values -------------------------------------------------------


def pools_of(cell, restrictions):
    """(dedicated, shared) CPU ids of ``cell`` under the CPU sets."""
    cpus = frozenset(c.id for c in cell.cpus)
    ded = getattr(restrictions, "dedicated_cpus", None)
    shared = getattr(restrictions, "shared_cpus", None)
    if ded is None and shared is None:
        return cpus, cpus
    return (
        cpus & frozenset(ded or ()),
        cpus & frozenset(shared or ()),
    )


def core_of(cell, cpu_id):
    """The thread siblings of ``cpu_id`` inside ``cell`` (itself too)."""
    ids = frozenset(c.id for c in cell.cpus)
    for c in cell.cpus:
        if c.id == cpu_id:
            return frozenset(c.siblings or {c.id}) & ids
    return frozenset({cpu_id})


def usage_of(usage, cell_id):
    """(pinned CPUs, {page size: used}, memory MB) of one cell."""
    for cid, u in getattr(usage, "cells", ()) if usage else ():
        if cid == cell_id:
            return (
                frozenset(u.pinned_cpus),
                dict(u.pages),
                u.memory_mb,
            )
    return frozenset(), {}, 0


def reserved_pages(restrictions, cell_id, size_kb):
    return dict(getattr(restrictions, "reserved_pages", ()) or ()).get(
        (cell_id, size_kb), 0
    )


def free_pages(cell, usage, restrictions, size_kb):
    """Pages of ``size_kb`` on ``cell`` left for a guest, or 0."""
    total = {p.size_kb: p.total for p in cell.pages}.get(size_kb)
    if total is None:
        return 0
    _, used, _ = usage_of(usage, cell.id)
    return (
        total
        - used.get(size_kb, 0)
        - reserved_pages(restrictions, cell.id, size_kb)
    )


def allowed_page_sizes(cell, pagesize):
    """Page sizes of ``cell`` a request for ``pagesize`` may use."""
    sizes = sorted(p.size_kb for p in cell.pages)
    if pagesize == SMALL:
        return sizes[:1]
    if pagesize == LARGE:
        return sizes[1:]
    if pagesize == ANY:
        return sizes
    return [s for s in sizes if s == pagesize]


def pins(request):
    """Does the guest's CPU policy pin?  Then none of its cells may
    overcommit memory, even a mixed guest's cell without dedicated
    vCPUs (Nova decides by the policy, not by the cell)."""
    return request.cpu_policy in ("dedicated", "mixed")


def small_memory_mb(cell, usage, restrictions, pinned):
    """Memory a guest cell without a page size may take from ``cell``."""
    sizes = sorted(p.size_kb for p in cell.pages)
    if not sizes:
        _, _, used_mb = usage_of(usage, cell.id)
        return cell.memory_kb // 1024 - (used_mb if pinned else 0)
    small = sizes[0]
    if pinned:
        pages = free_pages(cell, usage, restrictions, small)
    else:
        pages = {p.size_kb: p.total for p in cell.pages}[small]
    return pages * small // 1024


def free_devices(devices, in_use):
    """Devices nobody uses, nor the PF of a used VF, nor a VF of a used PF."""
    in_use = set(in_use or ())
    out = []
    for d in getattr(devices, "pci", ()) if devices else ():
        if d.address in in_use:
            continue
        if d.dev_type == TYPE_VF and d.parent_address in in_use:
            continue
        if d.dev_type == TYPE_PF and (
            set(d.vf_addresses) & in_use
            or any(
                o.parent_address == d.address and o.address in in_use
                for o in devices.pci
            )
        ):
            continue
        out.append(d)
    return out


def alias_matches(spec, device):
    def same(want, have):
        return want is None or str(want).lower() == str(have).lower()

    return (
        same(spec.vendor_id, device.vendor_id)
        and same(spec.product_id, device.product_id)
        and same(spec.device_type, device.dev_type)
    )


def pci_slots(request, aliases):
    """[(alias name, spec, policy)] once per requested device, or raise
    KeyError for an alias nobody defined."""
    slots = []
    for a in request.pci_aliases:
        spec = (aliases or {})[a.name]
        policy = (
            request.pci_numa_affinity_policy
            or getattr(spec, "numa_policy", None)
            or "legacy"
        )
        slots.extend([(a.name, spec, policy)] * a.count)
    return slots


def on_cells(device, policy, cells, topology):
    """Does ``device`` satisfy ``policy`` for a guest on host ``cells``?

    ``cells`` is None for a guest without NUMA cells: no affinity.
    ``socket``: a device on any cell of the guest's sockets, when every
    host cell has a socket; else a device on the guest's own cells.
    """
    if cells is None or policy == "preferred":
        return True
    if policy == "required":
        return device.numa_node is not None and device.numa_node in cells
    if policy == "legacy":
        return device.numa_node is None or device.numa_node in cells
    if policy == "socket":
        if any(c.socket is None for c in topology.cells):
            # Nova does not widen to the socket on a host with a cell
            # whose socket is unknown
            # (PciDeviceStats._filter_pools_for_socket_affinity): only
            # the guest's own cells qualify
            return device.numa_node is not None and device.numa_node in cells
        sockets = {
            c.socket
            for c in topology.cells
            if c.id in cells and c.socket is not None
        }
        return device.socket is not None and device.socket in sockets
    raise ValueError(f"unknown PCI NUMA policy {policy!r}")


def best_assignment(slots, devices, cells, topology):
    """Most preferred-and-local slots over assignments of distinct
    ``devices`` to every slot, or None when no assignment exists."""
    devices = list(devices)
    options = []
    for _, spec, policy in slots:
        opts = []
        for i, d in enumerate(devices):
            if alias_matches(spec, d) and on_cells(d, policy, cells, topology):
                local = (
                    policy == "preferred"
                    and cells is not None
                    and d.numa_node is not None
                    and d.numa_node in cells
                )
                opts.append((i, int(local)))
        options.append(opts)

    @functools.cache
    def best(k, used):
        if k == len(slots):
            return 0
        top = None
        for i, gain in options[k]:
            if used >> i & 1:
                continue
            rest = best(k + 1, used | 1 << i)
            if rest is not None and (top is None or rest + gain > top):
                top = rest + gain
        return top

    return best(0, 0)


# -- the checker --------------------------------------------------------------


def check_placement(
    topology,
    request,
    placement,
    usage,
    restrictions=None,
    devices=None,
    aliases=None,
):
    """Every way ``placement`` breaks the rules; empty when it is valid."""
    bad = []
    cells = list(getattr(placement, "cells", None) or ())
    guests = {g.id: g for g in request.cells}
    if sorted(c.guest_cell for c in cells) != sorted(guests):
        bad.append(
            f"placement covers guest cells "
            f"{sorted(c.guest_cell for c in cells)}; the guest has "
            f"{sorted(guests)}"
        )
    hosts = [c.host_cell for c in cells]
    if len(set(hosts)) != len(hosts):
        bad.append(f"host cells {hosts} are not distinct")
    taken = {}  # host CPU -> what took it
    emulators = 0
    for cp in cells:
        g = guests.get(cp.guest_cell)
        h = topology.cell(cp.host_cell)
        if g is None:
            continue
        if h is None:
            bad.append(f"guest cell {g.id}: host cell {cp.host_cell} absent")
            continue
        if g.host_cell is not None and g.host_cell != h.id:
            bad.append(
                f"guest cell {g.id} is pinned to host cell {g.host_cell} "
                f"but placed on {h.id}"
            )
        if not h.cpus:
            bad.append(f"guest cell {g.id} placed on memory-only cell {h.id}")
            continue
        bad.extend(_check_cpus(g, h, cp, request, usage, restrictions, taken))
        emulators += len(cp.emulator_cpus)
        bad.extend(_check_memory(g, h, cp, request, usage, restrictions))
    want = 1 if request.emulator_threads_policy == "isolate" else 0
    if emulators != want:
        bad.append(f"{emulators} emulator CPU(s); expected {want}")
    bad.extend(
        _check_pci(
            topology,
            request,
            placement,
            usage,
            devices,
            aliases,
            frozenset(hosts) if request.cells else None,
        )
    )
    return bad


def _check_cpus(g, h, cp, request, usage, restrictions, taken):
    bad = []
    ded, shared = pools_of(h, restrictions)
    pinned_now, _, _ = usage_of(usage, h.id)
    where = f"guest cell {g.id} on host cell {h.id}"
    vcpus = [v for v, _ in cp.cpu_pinning]
    pcpus = [p for _, p in cp.cpu_pinning]
    if sorted(vcpus) != sorted(g.pcpus):
        bad.append(
            f"{where}: pins vCPUs {sorted(vcpus)}; must pin exactly "
            f"{sorted(g.pcpus)} once each"
        )
    mine = set()
    for kind, ids in (
        ("pinned", pcpus),
        ("reserved", sorted(cp.reserved_cpus)),
        ("emulator", sorted(cp.emulator_cpus)),
    ):
        for p in ids:
            if p not in ded:
                bad.append(
                    f"{where}: {kind} CPU {p} is not in the dedicated "
                    f"pool {sorted(ded)}"
                )
            if p in pinned_now:
                bad.append(f"{where}: {kind} CPU {p} is already pinned")
            if p in taken:
                bad.append(
                    f"{where}: {kind} CPU {p} is also {taken[p]} elsewhere"
                )
            taken[p] = f"{kind} for guest cell {g.id}"
            mine.add(p)
    n_shared = len(g.cpus - g.pcpus)
    if cp.shared_vcpus != n_shared:
        bad.append(
            f"{where}: {cp.shared_vcpus} shared vCPUs; the cell has {n_shared}"
        )
    if n_shared:
        if not cp.shared_cpus:
            bad.append(f"{where}: shared vCPUs with no CPU to run on")
        if not cp.shared_cpus <= shared:
            bad.append(
                f"{where}: shared vCPUs on {sorted(cp.shared_cpus)}, "
                f"outside the shared pool {sorted(shared)}"
            )
        if n_shared > len(shared):
            bad.append(
                f"{where}: {n_shared} shared vCPUs overcommit the "
                f"{len(shared)}-CPU shared pool against themselves"
            )
        if cp.shared_cpus & mine:
            bad.append(
                f"{where}: shared vCPUs float over "
                f"{sorted(cp.shared_cpus & mine)}, which the guest itself "
                "pins, reserves or gives its emulator"
            )
    elif cp.shared_cpus:
        bad.append(f"{where}: shared CPUs without shared vCPUs")
    policy = request.cpu_thread_policy
    pinned = set(pcpus)
    if policy == "isolate":
        want = set()
        for p in pinned:
            want |= core_of(h, p) - {p}
        if want & pinned:
            bad.append(
                f"{where}: isolate pins siblings {sorted(want & pinned)}"
            )
        if set(cp.reserved_cpus) != want:
            bad.append(
                f"{where}: isolate reserves {sorted(cp.reserved_cpus)}; "
                f"the pinned CPUs' siblings are {sorted(want)}"
            )
    elif cp.reserved_cpus:
        bad.append(f"{where}: reserves CPUs without the isolate policy")
    if policy == "require" and pinned:
        for p in pinned:
            if len(core_of(h, p)) < 2:
                bad.append(f"{where}: require pins onto non-SMT CPU {p}")
        alone = sorted(p for p in pinned if not core_of(h, p) - {p} & pinned)
        if len(alone) > 1:
            bad.append(
                f"{where}: require pins {alone} without a pinned sibling; "
                "vCPUs go on sibling threads (one may be left over)"
            )
    return bad


def _check_memory(g, h, cp, request, usage, restrictions):
    where = f"guest cell {g.id} on host cell {h.id}"
    if cp.memory_mb != g.memory_mb:
        return [f"{where}: {cp.memory_mb} MB placed; asked {g.memory_mb}"]
    if request.pagesize is None:
        if cp.pagesize_kb is not None:
            return [f"{where}: page size {cp.pagesize_kb} never asked for"]
        have = small_memory_mb(h, usage, restrictions, pins(request))
        if g.memory_mb > have:
            return [f"{where}: {g.memory_mb} MB in {have} MB of small pages"]
        return []
    size = cp.pagesize_kb
    if size not in allowed_page_sizes(h, request.pagesize):
        return [
            f"{where}: page size {size} does not satisfy "
            f"{request.pagesize!r} on pools "
            f"{sorted(p.size_kb for p in h.pages)}"
        ]
    need_kb = g.memory_mb * 1024
    if need_kb % size:
        return [f"{where}: {g.memory_mb} MB is not a multiple of {size} KiB"]
    free = free_pages(h, usage, restrictions, size)
    if need_kb // size > free:
        return [
            f"{where}: needs {need_kb // size} pages of {size} KiB; "
            f"{free} free"
        ]
    return []


def _check_pci(topology, request, placement, usage, devices, aliases, cells):
    bad = []
    chosen = list(getattr(placement, "pci_devices", ()) or ())
    try:
        slots = pci_slots(request, aliases)
    except KeyError as exc:
        return [f"PCI alias {exc} is not defined"]
    if len(set(chosen)) != len(chosen):
        bad.append(f"PCI devices {chosen} are not distinct")
    if len(chosen) != len(slots):
        bad.append(f"{len(chosen)} PCI devices for {len(slots)} requested")
    in_use = getattr(usage, "pci_devices_in_use", ()) if usage else ()
    free = free_devices(devices, in_use)
    by_address = {d.address: d for d in free}
    known = {d.address for d in getattr(devices, "pci", ()) or ()}
    for a in chosen:
        if a not in known:
            bad.append(f"PCI device {a} does not exist")
        elif a not in by_address:
            bad.append(f"PCI device {a} is not free")
    if bad:
        return bad
    picked = [by_address[a] for a in chosen]
    got = best_assignment(slots, picked, cells, topology)
    if got is None:
        return [
            f"PCI devices {chosen} cannot serve the requests "
            f"{[(n, p) for n, _, p in slots]} on host cells "
            f"{sorted(cells) if cells is not None else None}"
        ]
    could = best_assignment(slots, free, cells, topology)
    if could is not None and got < could:
        bad.append(
            f"preferred: {got} device(s) on the guest's cells "
            f"{sorted(cells)}; a valid choice has {could}"
        )
    return bad
