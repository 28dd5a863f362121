"""Fit a guest request onto a host: a Placement, or every reason why not.

Pure: host topology + restrictions + usage + request + PCI devices in,
a value out.  No libvirt, no I/O, deterministic.

Cheap first: the per-cell answers are asked lazily (``CellAnswers``), a
greedy pass takes the search's first path, and only when it fails are
every pair answered, the matching and the backtracking run, and the
reasons built -- a fit on a 34-cell host costs about as many cell answers
as Nova's first permutation.
"""

from nova_slices.fit import pci
from nova_slices.fit.cell import CellAnswers, CellRequest
from nova_slices.fit.model import (
    CellUsage,
    Placement,
    Reason,
    Rejection,
    Usage,
)
from nova_slices.fit.search import has_matching, search
from nova_slices.host.devices import HostDevices
from nova_slices.host.restrictions import cpu_pools

_UNUSED = CellUsage()


def cell_requests(request):
    """One CellRequest per guest cell (the emulator pCPU goes with 0)."""
    out = []
    for cell in request.cells:
        extra = (
            1
            if (request.emulator_threads_policy == "isolate" and cell.id == 0)
            else 0
        )
        out.append(
            CellRequest(
                id=cell.id,
                memory_mb=cell.memory_mb,
                pinned=tuple(sorted(cell.pcpus)),
                shared=tuple(sorted(cell.cpus - cell.pcpus)),
                thread_policy=request.cpu_thread_policy,
                pagesize=request.pagesize,
                extra_pcpus=extra,
                pinned_guest=request.cpu_policy in ("dedicated", "mixed"),
                limited=request.cpu_policy != "dedicated",
            )
        )
    return out


def _order(topology, usage_of, restrictions, pinned, pack, pci_cells):
    """Host cells in strategy order (Nova's spread, or pack)."""

    def key(cell):
        u = usage_of(cell.id)
        dedicated, _ = cpu_pools(cell.cpu_ids, restrictions)
        free_cpus = len(dedicated - u.pinned_cpus) if pinned else -u.cpu_usage
        free_mem = cell.memory_mb - u.memory_mb
        room = (free_cpus, free_mem)
        if pack:
            room = tuple(-x for x in room)
        return (-pci_cells.get(cell.id, 0), tuple(-x for x in room), cell.id)

    return [c.id for c in sorted(topology.cells, key=key)]


def fit(
    topology,
    request,
    usage=None,
    restrictions=None,
    devices=None,
    aliases=None,
    pack=False,
    pci_requests=None,
    limits=None,
):
    """Placement or Rejection for ``request`` on ``topology``.

    ``limits`` (model.Limits): Nova's per-cell CPU and RAM
    over-subscription limits for guests of a shared, mixed or unset CPU
    policy, checked against ``usage``; None (the default) checks none.

    PCI requests come from the request's ``pci_passthrough:alias`` and
    ``aliases``, unless ``pci_requests`` (PciRequests) are given: Nova's
    scheduler has them already, Neutron ports' included.
    """
    usage = usage or Usage()
    devices = devices or HostDevices()
    requests = (
        tuple(pci_requests)
        if pci_requests is not None
        else pci.build_requests(request, aliases or {})
    )
    free = pci.available_devices(devices, usage.pci_devices_in_use)
    if not request.cells:
        # no guest NUMA topology: PCI affinity does not apply (Nova)
        chosen = pci.pci_choice(requests, free, set(), topology, numa=False)
        if chosen is None:
            return Rejection(tuple(_pci_reasons(requests, free, (), topology)))
        return Placement((), chosen)
    guests = cell_requests(request)
    host_ids = [c.id for c in topology.cells]
    reasons = []
    pins = {
        c.id: c.host_cell for c in request.cells if c.host_cell is not None
    }
    for g, host in pins.items():
        if host not in host_ids:
            reasons.append(
                Reason(
                    "numa.pinned-cell-missing",
                    f"hw:numa_node.{g}={host}: this host has no NUMA cell "
                    f"{host}; its cells are {host_ids}",
                    host,
                    g,
                )
            )
    pci_cells = {}
    for d in free:
        if any(r.matches(d) for r in requests) and d.numa_node is not None:
            pci_cells[d.numa_node] = pci_cells.get(d.numa_node, 0) + 1
    cell_usage = dict(usage.cells)

    def usage_of(h):
        return cell_usage.get(h, _UNUSED)

    order = _order(
        topology,
        usage_of,
        restrictions,
        any(g.pinned for g in guests),
        pack,
        pci_cells,
    )
    answers = CellAnswers(topology, usage_of, restrictions, limits)
    allowed = {
        g.id: order
        if g.id not in pins
        else [pins[g.id]]
        if pins[g.id] in host_ids
        else []
        for g in guests
    }

    def set_ok(cells):
        return pci.pci_choice(requests, free, cells, topology) is not None

    def placement(chosen):
        cells = tuple(
            answers.get(g, h) for g, h in zip(guests, chosen, strict=True)
        )
        devices_chosen = (
            pci.pci_choice(requests, free, frozenset(chosen), topology)
            if requests
            else ()
        )
        return Placement(cells, devices_chosen)

    if not reasons:
        chosen = _greedy(guests, allowed, answers)
        if chosen is not None and (not requests or set_ok(frozenset(chosen))):
            # the search's first leaf: it would come back with it too
            return placement(chosen)
    candidates = [
        [h for h in allowed[g.id] if answers.fits(g, h)] for g in guests
    ]
    if any(not c for c in candidates):
        for g, c in zip(guests, candidates, strict=True):
            if not c:
                for h in allowed[g.id]:
                    reasons.extend(answers.get(g, h))
        return Rejection(tuple(_relevant(reasons, candidates, guests)))
    pinned_cells = set(pins.values())

    def equivalent(a, b):
        if a in pinned_cells or b in pinned_cells:
            return False
        ca, cb = topology.cell(a), topology.cell(b)
        return (
            _signature(guests, pins, answers, a)
            == _signature(guests, pins, answers, b)
            and _pci_signature(requests, free, a)
            == _pci_signature(requests, free, b)
            and (
                ca.socket == cb.socket
                or not any(r.policy == "socket" for r in requests)
            )
        )

    chosen = search(candidates, set_ok if requests else None, equivalent)
    if chosen is None:
        return Rejection(
            tuple(_why_not(guests, candidates, requests, free, topology))
        )
    return placement(chosen)


def _greedy(guests, allowed, answers):
    """Each guest cell on the first free host cell it fits, or None.

    Without a backtrack this is the depth-first search's first path, so
    when it reaches a leaf the search would have returned the same cells
    (the pruning lets that path through: it completes).  Most guests fit
    this way after a handful of cell answers, with no matching at all."""
    used, chosen = set(), []
    for g in guests:
        for h in allowed[g.id]:
            if h not in used and answers.fits(g, h):
                used.add(h)
                chosen.append(h)
                break
        else:
            return None
    return chosen


def _signature(guests, pins, answers, h):
    """How a host cell answers each guest cell: fits or not, and how
    (None for a guest cell pinned elsewhere)."""
    sig = []
    for g in guests:
        if g.id in pins and pins[g.id] != h:
            sig.append(None)
            continue
        got = answers.like(g, h)
        if isinstance(got, list):
            sig.append(None)
        else:
            sig.append((len(got.cpu_pinning), got.pagesize_kb))
    return tuple(sig)


def _pci_signature(requests, free, h):
    return tuple(
        sorted(
            (d.vendor_id, d.product_id, d.dev_type)
            for d in free
            if d.numa_node == h and any(r.matches(d) for r in requests)
        )
    )


def _relevant(reasons, candidates, guests):
    """Keep reasons of guest cells that fit nowhere, or pin problems."""
    stuck = {g.id for g, c in zip(guests, candidates, strict=True) if not c}
    return [
        r
        for r in reasons
        if r.guest_cell in stuck or r.code == "numa.pinned-cell-missing"
    ]


def _why_not(guests, candidates, requests, free, topology):
    if not has_matching(candidates):
        cells = sorted(set().union(*candidates))
        return [
            Reason(
                "numa.not-enough-distinct-cells",
                f"the guest's {len(guests)} cells need {len(guests)} distinct "
                f"host cells; together they fit only on {cells}",
                requested=len(guests),
                available=len(cells),
            )
        ]
    possible = frozenset().union(*map(frozenset, candidates))
    return list(_pci_reasons(requests, free, possible, topology)) or [
        Reason(
            "pci.no-combination",
            "no choice of host cells satisfies every PCI request at "
            "once with the guest's CPU and memory needs",
        )
    ]


def _pci_reasons(requests, free, cells, topology):
    sockets = pci.policy_sockets(topology, cells)
    for r in requests:
        matching = [d for d in free if r.matches(d)]
        if len(matching) < r.count:
            yield Reason(
                "pci.not-enough-devices",
                f"alias {r.alias} wants {r.count} device(s); the host has "
                f"{len(matching)} free",
                requested=r.count,
                available=len(matching),
            )
            continue
        if not cells:
            continue
        ok = [
            d
            for d in matching
            if pci.qualifies(
                d,
                "required" if r.policy == "preferred" else r.policy,
                cells,
                sockets,
            )
        ]
        if r.policy == "preferred" or len(ok) >= r.count:
            continue
        where = ", ".join(sorted({str(d.numa_node) for d in matching}))
        if r.policy == "socket" and sockets is None:
            unknown = topology.cells_without_socket
            yield Reason(
                "pci.socket-unknown",
                f"alias {r.alias} (numa policy socket) wants {r.count} "
                f"device(s) on the socket of the guest's cells, but host "
                f"cell(s) {', '.join(map(str, unknown))} have no socket "
                "(CPUs without socket ids, or spanning sockets), so, as in "
                "Nova, only devices on the guest's own cells (possible: "
                f"{sorted(cells)}) qualify; free matching devices are on "
                f"cells {where}",
                host_cell=unknown[0],
                requested=r.count,
                available=len(ok),
            )
        elif r.policy == "socket":
            yield Reason(
                "pci.no-device-on-socket",
                f"alias {r.alias} (numa policy socket) wants {r.count} "
                f"device(s) on the socket of the guest's cells (sockets "
                f"{sorted(sockets)}); free matching devices are on cells "
                f"{where}",
                requested=r.count,
                available=len(ok),
            )
        else:
            yield Reason(
                "pci.no-device-on-cell",
                f"alias {r.alias} (numa policy {r.policy}) wants {r.count} "
                f"device(s) on the guest's host cells (possible: "
                f"{sorted(cells)}); free matching devices are on cells "
                f"{where}",
                requested=r.count,
                available=len(ok),
            )
