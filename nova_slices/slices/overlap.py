"""Slices that may be in use together must not share the host (pure).

``conflict_parent`` is the only thing that keeps two slices apart:
Placement hands out, at once, any set of slices none of which is an
ancestor of another (an *antichain* of the slice forest), and nothing
else checks what their templates hold.  Two slices outside one line of
descent that name the same GPU or pinned CPU therefore become two guests
on one GPU; a leaf whose GPU its parent's template lacks can run next to
that parent.  This module compares what every slice's template holds
(:class:`nova_slices.virt.holdings.Holdings`, read from the rendered
domain) against the tree, so such a host is refused before any guest
lands on it.

Slices that conflict (ancestor and descendant) may share anything: that
is what ``conflict_parent`` is for.  Between any other two:

``slice.overlap-device``
    both hold one PCI device or mdev;
``slice.overlap-cpu``
    both pin vCPUs to one host CPU;
``slice.overlap-emulator-cpu``
    one's emulator threads run on a host CPU the other pins a vCPU to
    (emulator CPUs shared between emulators are allowed: a slice host's
    emulator cores serve every slice, see :mod:`nova_slices.virt.holdings`);
``slice.overlap-pages``
    the slices that may run together hold more hugepages of one size on
    one host cell than its pool has for guests (pool less
    ``[DEFAULT] reserved_huge_pages``).  The worst such set is found per
    (cell, page size): a forest's heaviest antichain is, for each node,
    the larger of its own pages and the sum of its children's heaviest
    antichains;
``slice.pages-over-pool``
    the same for one slice alone (its template asks for more than the
    pool has);
``slice.not-inside-parent``
    a child holds a PCI device, mdev, pinned host CPU or hugepages on a
    cell that its ``conflict_parent`` does not: taking the parent would
    not exclude what the child uses.

Every problem is a :class:`~nova_slices.errors.ConfigError` naming the
slices (``value["slices"]``) and the shared thing, in a stable order:
children outside their parent first (a wrong ``conflict_parent`` link
usually explains the overlaps that follow), then devices, CPUs, emulator
CPUs and pages, each by the slices' order in the configuration.
"""

import dataclasses

from nova_slices.cpuset import format_cpuset
from nova_slices.errors import ConfigError
from nova_slices.host.views import size_name
from nova_slices.slices.spec import OPTION

#: what a conflict_parent link promises, said in every overlap message
_RUN_TOGETHER = (
    "can be in use at the same time (neither is the other's "
    "conflict_parent ancestor)"
)
_RUN_TOGETHER_ALL = (
    "can all be in use at the same time (none is another's "
    "conflict_parent ancestor)"
)
_FIX_OVERLAP = (
    "give each its own in its template, or make one slice a descendant "
    "of the other (conflict_parent) so that they exclude each other"
)


def check_slice_overlaps(tree, holdings_by_slice, topology, restrictions=None):
    """Every way the slices of ``tree`` could double-book the host.

    ``holdings_by_slice`` maps slice names to the Holdings of their
    rendered templates; a slice missing from it (its template does not
    render or fit the host; ``validate`` reports that, and no guest can
    be defined from it) holds nothing here.
    ``restrictions`` (HostRestrictions or None) supplies the hugepages
    kept from guests.  Returns a tuple of ConfigError, empty when the
    slices are disjoint wherever they may run together.
    """
    held = {n: h for n, h in holdings_by_slice.items() if n in tree.slices}
    order = {name: i for i, name in enumerate(tree.slices)}
    apart = _Apart(order, {name: tree.conflicts(name) for name in order})
    return tuple(
        _outside_parent(tree, held)
        + _shared_devices(held, apart)
        + _shared_cpus(held, apart)
        + _emulator_on_pins(held, apart)
        + _pages(tree, held, topology, restrictions, apart)
    )


@dataclasses.dataclass(frozen=True)
class _Apart:
    """Which slices may run together, and their configuration order."""

    #: {slice: position in the configuration}
    order: dict
    #: {slice: its ancestors and descendants}
    conflicts: dict

    def together(self, a, b):
        return a != b and b not in self.conflicts[a]

    def pair(self, a, b):
        """(a, b) in configuration order."""
        return (a, b) if self.order[a] < self.order[b] else (b, a)

    def key(self, names):
        """Sort key of a sequence of slice names."""
        return tuple(self.order[n] for n in names)


def _holders(held, field):
    """{item: [slice names]} over one Holdings field."""
    out = {}
    for name, holdings in held.items():
        for item in getattr(holdings, field):
            out.setdefault(item, []).append(name)
    return out


def _shared(held, field, apart):
    """{(a, b): {items}} that two slices which may run together both
    hold, (a, b) in configuration order."""
    found = {}
    for item, names in _holders(held, field).items():
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if apart.together(a, b):
                    found.setdefault(apart.pair(a, b), set()).add(item)
    return found


def _shared_devices(held, apart):
    pci = _shared(held, "pci", apart)
    mdevs = _shared(held, "mdevs", apart)
    out = []
    for a, b in sorted(set(pci) | set(mdevs), key=apart.key):
        devices = sorted(pci.get((a, b), ()))
        uuids = sorted(mdevs.get((a, b), ()))
        what = [f"PCI device {d}" for d in devices]
        what += [f"mdev {m}" for m in uuids]
        out.append(
            ConfigError(
                f"{OPTION}: slices {a} and {b} {_RUN_TOGETHER} but both "
                f"templates hold {', '.join(what)}; two guests would get "
                f"it: {_FIX_OVERLAP}",
                code="slice.overlap-device",
                key=OPTION,
                value={"slices": [a, b], "pci": devices, "mdevs": uuids},
            )
        )
    return out


def _shared_cpus(held, apart):
    found = _shared(held, "pinned_cpus", apart)
    return [
        ConfigError(
            f"{OPTION}: slices {a} and {b} {_RUN_TOGETHER} but both "
            f"templates pin vCPUs to host CPU(s) {format_cpuset(cpus)}; two "
            f"guests would run there: {_FIX_OVERLAP}",
            code="slice.overlap-cpu",
            key=OPTION,
            value={"slices": [a, b], "cpus": format_cpuset(cpus)},
        )
        for (a, b), cpus in sorted(
            found.items(), key=lambda i: apart.key(i[0])
        )
    ]


def _emulator_on_pins(held, apart):
    """One slice's emulator CPUs on another's vCPU pins (emulators may
    share CPUs with each other: they are not pinned work)."""
    pinned = _holders(held, "pinned_cpus")
    found = {}
    for name, holdings in held.items():
        for cpu in holdings.emulator_cpus:
            for other in pinned.get(cpu, ()):
                if apart.together(name, other):
                    found.setdefault((name, other), set()).add(cpu)
    return [
        ConfigError(
            f"{OPTION}: slices {emu} and {pins} {_RUN_TOGETHER} but {emu}'s "
            f"template runs its emulator threads on host CPU(s) "
            f"{format_cpuset(cpus)}, which {pins}'s template pins vCPUs to; "
            "emulator threads may share CPUs with other slices' emulator "
            "threads, never with their vCPUs: move them to the host's "
            "emulator cores, or make one slice a descendant of the other "
            "(conflict_parent)",
            code="slice.overlap-emulator-cpu",
            key=OPTION,
            value={
                "slices": [emu, pins],
                "emulator": emu,
                "cpus": format_cpuset(cpus),
            },
        )
        for (emu, pins), cpus in sorted(
            found.items(), key=lambda i: apart.key(i[0])
        )
    ]


def _outside_parent(tree, held):
    """Children holding what their parent does not."""
    out = []
    for s in tree.slices.values():
        if s.parent is None or s.name not in held or s.parent not in held:
            continue
        child, parent = held[s.name], held[s.parent]
        pci = sorted(child.pci - parent.pci)
        mdevs = sorted(child.mdevs - parent.mdevs)
        cpus = child.pinned_cpus - parent.pinned_cpus
        theirs = dict(parent.pages)
        pages = [
            (cell, size, count, theirs.get((cell, size), 0))
            for (cell, size), count in sorted(child.pages)
            if count > theirs.get((cell, size), 0)
        ]
        what = [f"PCI device {d}" for d in pci]
        what += [f"mdev {m}" for m in mdevs]
        if cpus:
            what.append(f"vCPUs pinned to host CPU(s) {format_cpuset(cpus)}")
        what += [
            f"{count} pages of {size_name(size)} on host cell {cell} "
            f"(its parent holds {have})"
            for cell, size, count, have in pages
        ]
        if not what:
            continue
        out.append(
            ConfigError(
                f"{OPTION}: slice {s.name} has conflict_parent {s.parent} "
                f"but its template holds {', '.join(what)}, outside "
                f"{s.parent}'s template; a parent must hold everything its "
                f"children hold, or taking {s.parent} does not exclude "
                f"{s.name}: set {s.name}'s conflict_parent to a slice "
                "holding them, or correct the templates",
                code="slice.not-inside-parent",
                key=OPTION,
                value={
                    "slices": [s.name, s.parent],
                    "pci": pci,
                    "mdevs": mdevs,
                    "cpus": format_cpuset(cpus),
                    "pages": [
                        {"cell": cell, "size_kb": size, "count": count}
                        for cell, size, count, _ in pages
                    ],
                },
            )
        )
    return out


def _heaviest(tree, weight):
    """(total, names) of the heaviest antichain of ``tree`` under
    ``weight`` ({slice: pages}): the slices that may run together and
    hold the most.  A parent is taken over its children on a tie."""
    best = {}
    for s in reversed(tree.parents_first()):
        own = weight.get(s.name, 0)
        below = sum(best[c][0] for c in s.children)
        if s.children and below > own:
            best[s.name] = (
                below,
                tuple(n for c in s.children for n in best[c][1]),
            )
        else:
            best[s.name] = (own, (s.name,) if own else ())
    roots = tree.roots()
    return (
        sum(best[r.name][0] for r in roots),
        tuple(n for r in roots for n in best[r.name][1]),
    )


def _pages(tree, held, topology, restrictions, apart):
    """Hugepages over a cell's pool: of one slice alone, and of the
    heaviest set of slices that may run together.

    The set is searched with every slice's pages capped at the pool, so
    that a slice too large on its own (reported once, by itself) does
    not hide a set of smaller ones that is too large together: with the
    cap, only a set of two or more can exceed the pool.
    """
    weights = {}
    for name, holdings in held.items():
        for key, count in holdings.pages:
            weights.setdefault(key, {})[name] = count
    out = []
    for (cell_id, size), weight in sorted(weights.items()):
        cell = topology.cell(cell_id)
        pool = cell.pool(size) if cell is not None else None
        if pool is None:
            continue  # the template's host check names the missing pool
        reserved = restrictions.reserved(cell_id, size) if restrictions else 0
        capacity = pool.total - reserved
        room = (
            f"host cell {cell_id} has {capacity} {size_name(size)} pages "
            f"for guests ({pool.total} in its pool, {reserved} kept by "
            "[DEFAULT] reserved_huge_pages)"
        )
        where = {"cell": cell_id, "size_kb": size, "capacity": capacity}
        for name in tree.slices:
            if weight.get(name, 0) > capacity:
                out.append(
                    ConfigError(
                        f"{OPTION}: slice {name}'s template holds "
                        f"{weight[name]} {size_name(size)} pages on host "
                        f"cell {cell_id} but {room}; shrink its memory or "
                        "spread it over other cells",
                        code="slice.pages-over-pool",
                        key=OPTION,
                        value={
                            "slices": [name],
                            "pages": weight[name],
                            **where,
                        },
                    )
                )
        capped = {n: min(w, capacity) for n, w in weight.items()}
        most, chosen = _heaviest(tree, capped)
        if most <= capacity:
            continue
        names = sorted(chosen, key=apart.order.get)
        total = sum(weight[n] for n in names)
        each = ", ".join(f"{n}: {weight[n]}" for n in names)
        out.append(
            ConfigError(
                f"{OPTION}: slices {', '.join(names)} {_RUN_TOGETHER_ALL} "
                f"and together hold {total} {size_name(size)} pages on host "
                f"cell {cell_id} ({each}) but {room}; shrink their memory, "
                "move some to another cell, or make them exclude each "
                "other (conflict_parent)",
                code="slice.overlap-pages",
                key=OPTION,
                value={"slices": names, "pages": total, **where},
            )
        )
    return out
