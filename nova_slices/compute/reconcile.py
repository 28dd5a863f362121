"""libvirt's guests, Placement's allocations and the host's usage, compared.

There are three records of what a host gives its guests: the domains
libvirt holds (the truth of what runs), the allocations Placement holds
(what the scheduler will not give away again) and the usage the host
derives from the domains (what the fitter will not give away again).
After a crash, a hand edit, a lost race or a bad template they can
disagree; this module names every disagreement with a stable code and
fixes nothing, so an operator (``nova-slices list``) or a periodic task
decides what to do.  Both kinds of host use it: the strategies only say
what each guest holds and which allocation it should have.

:func:`plan_repairs` decides the few repairs that are safe to make
without an operator (allocations of spawns and destroys that died
half-way, guests that lost their allocation); the driver carries them
out (:mod:`nova_slices.compute.repair`).

Pure: values in, Discrepancies or a RepairPlan out.
"""

import dataclasses

from nova_slices.cpuset import format_cpuset
from nova_slices.virt.holdings import Holdings


@dataclasses.dataclass(frozen=True)
class Discrepancy:
    code: str
    message: str
    #: the guest it is about ("" when it is about the host)
    instance_uuid: str
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class GuestState:
    """One defined domain, as far as reconciling is concerned."""

    name: str
    holdings: Holdings = Holdings()
    #: None for a domain nova-slices did not make (its holdings still
    #: count: a GPU in someone else's domain is taken)
    instance_uuid: str | None = None
    #: {provider uuid: {resource class: amount}}: exactly what its
    #: Placement allocation must hold on these providers
    expected: dict = dataclasses.field(default_factory=dict)
    #: where it runs, for messages ("on slice 4_1", "on host cells 0,1")
    where: str = ""


def reconcile(guests, allocations, topology, restrictions=None, names=None):
    """Every disagreement between ``guests`` (GuestStates),
    ``allocations`` ({consumer: {provider uuid: {class: amount}}} over
    this host's providers) and the host's capacity, in a stable order.

    ``names`` maps provider uuids to the names messages use.
    """
    names = names or {}
    return tuple(
        _allocation_problems(guests, allocations, names)
        + _cpu_problems(guests, topology)
        + _device_problems(guests)
        + _page_problems(guests, topology, restrictions)
    )


def _describe(allocation, names):
    return (
        "{"
        + ", ".join(
            f"{names.get(rp, rp)}: {dict(sorted(res.items()))}"
            for rp, res in sorted(
                allocation.items(), key=lambda i: names.get(i[0], i[0])
            )
        )
        + "}"
    )


def _allocation_problems(guests, allocations, names):
    out = []
    ours = [g for g in guests if g.instance_uuid]
    for g in sorted(ours, key=lambda g: g.name):
        held = allocations.get(g.instance_uuid, {})
        if not held:
            out.append(
                Discrepancy(
                    "guest.no-allocation",
                    f"guest {g.name} ({g.instance_uuid}) runs {g.where} but "
                    "holds no allocation in Placement; what it uses may be "
                    "given to another guest",
                    g.instance_uuid,
                    g.name,
                )
            )
            continue
        wrong = {
            rp: held.get(rp, {})
            for rp, want in g.expected.items()
            if held.get(rp, {}) != want
        }
        if wrong:
            out.append(
                Discrepancy(
                    "guest.allocation-mismatch",
                    f"guest {g.name} runs {g.where} and should hold "
                    f"{_describe(g.expected, names)} but Placement has "
                    f"{_describe(wrong, names)} there (all of its "
                    f"allocation: {_describe(held, names)})",
                    g.instance_uuid,
                    g.name,
                )
            )
    known = {g.instance_uuid for g in ours}
    for consumer, held in sorted(allocations.items()):
        if consumer not in known:
            out.append(
                Discrepancy(
                    "allocation.no-guest",
                    f"consumer {consumer} holds {_describe(held, names)} on "
                    "this host but no guest here records it; it stays used "
                    "until the allocation is deleted",
                    consumer,
                )
            )
    return out


def _owners(guests, field):
    """{item: [guest names]} over one Holdings field."""
    out = {}
    for g in guests:
        for item in getattr(g.holdings, field):
            out.setdefault(item, []).append(g.name)
    return out


def _about(guests, name):
    g = next(g for g in guests if g.name == name)
    return g.instance_uuid or "", g.name


def _cpu_problems(guests, topology):
    out = []
    pinned = _owners(guests, "pinned_cpus")
    found = {}
    for cpu, holders in pinned.items():
        for i, a in enumerate(sorted(holders)):
            for b in sorted(holders)[i + 1 :]:
                found.setdefault((a, b, "pinned"), set()).add(cpu)
    for g in guests:
        for cpu in g.holdings.emulator_cpus:
            for other in pinned.get(cpu, ()):
                if other != g.name:
                    found.setdefault((other, g.name, "emulator"), set()).add(
                        cpu
                    )
    for (a, b, kind), cpus in sorted(found.items()):
        how = (
            "have vCPUs pinned to"
            if kind == "pinned"
            else f"share: {b}'s emulator threads run on {a}'s pinned"
        )
        out.append(
            Discrepancy(
                "usage.cpu-shared",
                f"guests {a} and {b} {how} host CPU(s) {format_cpuset(cpus)}",
                *_about(guests, b),
            )
        )
    host_cpus = topology.cpu_ids
    for g in sorted(guests, key=lambda g: g.name):
        held = g.holdings.pinned_cpus | g.holdings.emulator_cpus
        if held - host_cpus:
            out.append(
                Discrepancy(
                    "usage.not-on-host",
                    f"guest {g.name} is pinned to host CPU(s) "
                    f"{format_cpuset(held - host_cpus)} that this host does "
                    "not have",
                    *_about(guests, g.name),
                )
            )
    return out


def _device_problems(guests):
    found = {}
    for field, label in (("pci", "PCI device"), ("mdevs", "mdev")):
        for item, holders in _owners(guests, field).items():
            holders = sorted(holders)
            for i, a in enumerate(holders):
                for b in holders[i + 1 :]:
                    found.setdefault((a, b), []).append(f"{label} {item}")
    return [
        Discrepancy(
            "usage.device-shared",
            f"guests {a} and {b} both hold {', '.join(sorted(items))}",
            *_about(guests, b),
        )
        for (a, b), items in sorted(found.items())
    ]


def _page_problems(guests, topology, restrictions):
    used, holders = {}, {}
    for g in guests:
        for key, count in g.holdings.pages:
            used[key] = used.get(key, 0) + count
            holders.setdefault(key, []).append(g.name)
    out = []
    for (cell_id, size), count in sorted(used.items()):
        cell = topology.cell(cell_id)
        pool = cell.pool(size) if cell is not None else None
        if pool is None:
            out.append(
                Discrepancy(
                    "usage.not-on-host",
                    f"guest(s) {', '.join(sorted(holders[(cell_id, size)]))}"
                    f" use {size} KiB pages of host cell {cell_id}, which "
                    "has no such pool",
                    "",
                )
            )
            continue
        reserved = restrictions.reserved(cell_id, size) if restrictions else 0
        capacity = pool.total - reserved
        if count > capacity:
            out.append(
                Discrepancy(
                    "usage.pages-over-pool",
                    f"host cell {cell_id} has {capacity} pages of {size} KiB "
                    f"for guests but guests "
                    f"{', '.join(sorted(holders[(cell_id, size)]))} hold "
                    f"{count}",
                    "",
                )
            )
    return out


@dataclasses.dataclass(frozen=True)
class RepairPlan:
    """What to do about allocations without a guest and guests without
    an allocation; every tuple holds (consumer, why) pairs unless said."""

    #: delete these allocations
    release: tuple = ()
    #: allocations without a guest left alone, and why
    keep: tuple = ()
    #: those of ``keep`` whose spawn or destroy is in progress (normal
    #: while other commands run; the rest deserve a warning)
    busy: frozenset = frozenset()
    #: GuestStates whose allocation should be claimed again
    reclaim: tuple = ()
    #: consumers whose finished journal entries can go
    forget: tuple = ()
    #: {consumer: first seen} of allocations no entry explains
    seen: dict = dataclasses.field(default_factory=dict)


def _ago(seconds):
    return f"{int(max(seconds, 0))} s ago"


def plan_repairs(
    guests, allocations, intents, seen, now, grace, unreadable=()
):
    """The repairs the reconciler may make on its own.

    ``guests`` are GuestStates, ``allocations`` {consumer: {provider:
    {class: amount}}} over this host's providers, ``intents`` the journal
    entries (:class:`nova_slices.compute.journal.Intent`), ``seen``
    {consumer: epoch seconds} when an allocation no entry explains was
    first seen, ``unreadable`` the persisted domains that could not be
    defined (``name``, ``path``, ``instance_uuid`` or None).

    An allocation without a guest is released when the spawn or destroy
    that wrote it is dead (its entry is not locked), or when no entry
    explains it and it was first seen ``grace`` seconds ago or more;
    never while an entry's process holds it, and never while it may
    belong to a domain whose file is unreadable.  A guest without an
    allocation is claimed again (where it still fits).
    """
    ours = {g.instance_uuid for g in guests if g.instance_uuid}
    by_consumer = {i.consumer: i for i in intents}
    unknown = [u for u in unreadable if not u.instance_uuid]
    claimed = {u.instance_uuid: u for u in unreadable if u.instance_uuid}
    release, keep, new_seen = [], [], {}
    for consumer in sorted(allocations):
        if consumer in ours:
            continue
        intent = by_consumer.get(consumer)
        broken = claimed.get(consumer) or (unknown[0] if unknown else None)
        if intent is not None and intent.live:
            keep.append(
                (
                    consumer,
                    f"a {intent.op} of {intent.name} is in progress "
                    f"(process {intent.pid}, started "
                    f"{_ago(now - intent.started_at)})",
                )
            )
        elif broken is not None:
            keep.append(
                (
                    consumer,
                    f"it may belong to guest {broken.name}, whose domain "
                    f"file {broken.path} is unreadable",
                )
            )
        elif intent is not None:
            release.append(
                (
                    consumer,
                    f"the {intent.op} of {intent.name} started "
                    f"{_ago(now - intent.started_at)} died before it "
                    "finished (its process is gone)",
                )
            )
        else:
            first = seen.get(consumer, now)
            new_seen[consumer] = first
            if now - first >= grace:
                release.append(
                    (
                        consumer,
                        "no guest, and no spawn or destroy in progress, "
                        f"since it was first seen {_ago(now - first)} "
                        f"(grace {grace} s)",
                    )
                )
                del new_seen[consumer]
            else:
                keep.append(
                    (
                        consumer,
                        "no guest since it was first seen "
                        f"{_ago(now - first)}; released once {grace} s "
                        "have passed",
                    )
                )
    kept = {c for c, _ in keep}
    live = {i.consumer for i in intents if i.live}
    reclaim = tuple(
        g
        for g in sorted(guests, key=lambda g: g.name)
        if g.instance_uuid
        and not allocations.get(g.instance_uuid)
        and g.instance_uuid not in live
        and g.expected
    )
    forget = tuple(
        i.consumer for i in intents if not i.live and i.consumer not in kept
    )
    busy = frozenset(c for c in kept if c in live)
    return RepairPlan(
        tuple(release), tuple(keep), busy, reclaim, forget, new_seen
    )


def unreadable_problems(unreadable):
    """A Discrepancy for every persisted domain that could not be
    defined, saying how to repair it."""
    return [
        Discrepancy(
            "host.domain-unreadable",
            unreadable_message(u),
            u.instance_uuid or "",
            u.name,
        )
        for u in sorted(unreadable, key=lambda u: u.name)
    ]


def unreadable_message(u):
    release = (
        f" and release its allocation (nova-slices release {u.instance_uuid})"
        if u.instance_uuid
        else ""
    )
    return (
        f"persisted domain file {u.path} cannot be defined ({u.reason}); "
        f"guest {u.name} is left out and every other guest is usable. "
        "Repair: restore the file from a backup, or move it aside "
        f"(mv {u.path} {u.path}.broken){release}"
    )
