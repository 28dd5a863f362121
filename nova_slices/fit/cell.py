"""Can one guest cell go on one host cell, and how exactly?

The per-cell half of Nova's ``_numa_fit_instance_cell``: memory from the
right page pool, pinned vCPUs packed onto cores by thread policy, shared
vCPUs on the shared CPUs.  Because every guest cell needs its own host
cell, these answers are independent of each other; the search combines
them.  A "no" is a list of reasons, each with the numbers behind it.
"""

import dataclasses

from nova_slices.fit.model import CellPlacement, Reason
from nova_slices.host.restrictions import cpu_pools
from nova_slices.request.model import ANY, LARGE, SMALL


@dataclasses.dataclass(frozen=True)
class CellRequest:
    """What a guest cell needs, independent of where it goes."""

    id: int
    memory_mb: int
    pinned: tuple  # vCPUs pinned 1:1, sorted
    shared: tuple  # vCPUs floating over shared CPUs, sorted
    thread_policy: str | None
    pagesize: object  # None, SMALL, LARGE, ANY or KiB
    #: extra pCPUs to reserve with this cell (isolated emulator thread)
    extra_pcpus: int = 0
    #: the guest's CPU policy pins (dedicated or mixed): its memory never
    #: overcommits, in every cell -- a mixed guest's cell without
    #: dedicated vCPUs too (Nova's ``use_free`` goes by the policy)
    pinned_guest: bool = False
    #: the guest's CPU policy is shared, mixed or unset: Nova checks the
    #: cell's over-subscription limits for it (not for dedicated)
    limited: bool = False


def _reason(code, message, cell, guest, requested=None, available=None):
    return Reason(code, message, cell.id, guest.id, requested, available)


def fit_cell(guest, cell, usage, restrictions, limits=None):
    """CellPlacement, or a list of Reasons why ``guest`` cannot go here.

    ``limits`` (model.Limits) apply to guests of a shared, mixed or unset
    CPU policy, as in Nova; None: no over-subscription check."""
    if not cell.cpus:
        return [
            _reason(
                "numa.memory-only-cell",
                f"host cell {cell.id} has memory but no CPUs; it never hosts "
                "vCPUs",
                cell,
                guest,
            )
        ]
    reasons = []
    pinned_now = usage.pinned_cpus
    memory = _memory(guest, cell, usage, restrictions, reasons)
    dedicated, shared = cpu_pools(cell.cpu_ids, restrictions)
    reserved = emulator = frozenset()
    pairs = ()
    if guest.pinned or guest.extra_pcpus:
        got = _pin(guest, cell, dedicated - pinned_now, reasons)
        if got is not None:
            pairs, reserved, emulator = got
    if guest.shared and len(guest.shared) > len(shared):
        reasons.append(
            _reason(
                "numa.not-enough-shared-cpus",
                f"guest cell {guest.id} has {len(guest.shared)} shared "
                "vCPU(s); "
                f"host cell {cell.id} has {len(shared)} shared CPU(s)",
                cell,
                guest,
                len(guest.shared),
                len(shared),
            )
        )
    if limits is not None and guest.limited:
        _oversubscribed(guest, cell, usage, limits, len(shared), reasons)
    if reasons:
        return reasons
    floating = frozenset()
    if guest.shared:
        # never over the guest's own pinned, reserved or emulator CPUs;
        # avoid other guests' pinned CPUs when there is room
        own = frozenset(p for _, p in pairs) | reserved | emulator
        floating = (shared - own - pinned_now) or (shared - own)
        if not floating:
            return [
                _reason(
                    "numa.not-enough-shared-cpus",
                    f"guest cell {guest.id}'s shared vCPUs have no CPU of "
                    f"host cell {cell.id} left that its pinned vCPUs do not "
                    "take",
                    cell,
                    guest,
                    len(guest.shared),
                    0,
                )
            ]
    return CellPlacement(
        guest_cell=guest.id,
        host_cell=cell.id,
        cpu_pinning=pairs,
        shared_cpus=floating,
        reserved_cpus=reserved,
        emulator_cpus=emulator,
        memory_mb=guest.memory_mb,
        pagesize_kb=memory,
        shared_vcpus=len(guest.shared),
        pinned_guest=guest.pinned_guest,
    )


def _oversubscribed(guest, cell, usage, limits, n_shared, reasons):
    """Nova's shared-CPU and memory limits of ``_numa_fit_instance_cell``:
    the cell's shared vCPUs against its shared CPUs times the CPU ratio,
    its guests' memory (hugepages too) against its memory times the RAM
    ratio.  A mixed guest counts only its shared vCPUs."""
    asked = len(guest.shared)
    limit = n_shared * limits.cpu_allocation_ratio
    if usage.cpu_usage + asked > limit:
        reasons.append(
            _reason(
                "numa.cpu-oversubscribed",
                f"guest cell {guest.id} has {asked} shared vCPU(s); host "
                f"cell {cell.id} has {usage.cpu_usage} in use of a limit of "
                f"{limit:g} ({n_shared} shared CPU(s) x cpu_allocation_ratio "
                f"{limits.cpu_allocation_ratio:g})",
                cell,
                guest,
                asked,
                limit - usage.cpu_usage,
            )
        )
    limit = cell.memory_mb * limits.ram_allocation_ratio
    if usage.memory_mb + guest.memory_mb > limit:
        reasons.append(
            _reason(
                "numa.memory-oversubscribed",
                f"guest cell {guest.id} needs {guest.memory_mb} MB; host "
                f"cell {cell.id} has {usage.memory_mb} MB in use of a limit "
                f"of {limit:g} MB ({cell.memory_mb} MB x "
                f"ram_allocation_ratio {limits.ram_allocation_ratio:g})",
                cell,
                guest,
                guest.memory_mb,
                limit - usage.memory_mb,
            )
        )


# -- memory -------------------------------------------------------------


def free_pages(cell, usage, restrictions, size_kb):
    pool = cell.pool(size_kb)
    if pool is None:
        return 0
    reserved = restrictions.reserved(cell.id, size_kb) if restrictions else 0
    return max(0, pool.total - usage.pages_used(size_kb) - reserved)


def _memory(guest, cell, usage, restrictions, reasons):
    """The page size the guest cell's memory comes from (None: small)."""
    need_kb = guest.memory_mb * 1024
    sizes = sorted(p.size_kb for p in cell.pages)
    if guest.pagesize is None:
        pinned = guest.pinned_guest
        if sizes:
            small = sizes[0]
            have = (
                (
                    free_pages(cell, usage, restrictions, small)
                    if pinned
                    else cell.pool(small).total
                )
                * small
                // 1024
            )
        else:
            have = cell.memory_mb - (usage.memory_mb if pinned else 0)
        if guest.memory_mb > have:
            reasons.append(
                _reason(
                    "numa.not-enough-memory",
                    f"guest cell {guest.id} needs {guest.memory_mb} MB; host "
                    f"cell {cell.id} has {have} MB"
                    + (" free" if pinned else ""),
                    cell,
                    guest,
                    guest.memory_mb,
                    have,
                )
            )
        return None
    if guest.pagesize == SMALL:
        candidates = sizes[:1]
    elif guest.pagesize == LARGE:
        candidates = sorted(sizes[1:], reverse=True)
    elif guest.pagesize == ANY:
        candidates = sorted(sizes, reverse=True)
    else:
        candidates = [guest.pagesize] if guest.pagesize in sizes else []
    if not candidates:
        reasons.append(
            _reason(
                "numa.no-page-size",
                f"host cell {cell.id} has no pool of {guest.pagesize} pages "
                f"(pools: {sizes} KiB)",
                cell,
                guest,
                guest.pagesize,
                sizes,
            )
        )
        return None
    best = None
    for size in candidates:
        if need_kb % size:
            continue
        free = free_pages(cell, usage, restrictions, size)
        if need_kb // size <= free:
            return size
        if best is None:
            best = (size, need_kb // size, free)
    if best is None:
        reasons.append(
            _reason(
                "numa.page-size-misaligned",
                f"guest cell {guest.id}'s {guest.memory_mb} MB is not a "
                f"multiple of the page sizes {candidates} KiB",
                cell,
                guest,
                guest.memory_mb,
                candidates,
            )
        )
    else:
        size, need, free = best
        reasons.append(
            _reason(
                "numa.not-enough-pages",
                f"guest cell {guest.id} needs {need} pages of {size} KiB; "
                "host "
                f"cell {cell.id} has {free} free",
                cell,
                guest,
                need,
                free,
            )
        )
    return None


# -- pinned CPUs ----------------------------------------------------------
#
# Nova's _pack_instance_onto_cores, answered the same way: the thread
# policy decides where the pinned vCPUs go; the isolated emulator thread
# then takes any other free dedicated CPU (for ``isolate``: outside the
# cores of the pinned vCPUs), and its siblings stay free for others.  A
# cell without pinned vCPUs (a mixed guest's) has nothing for a thread
# policy to act on.


def _cores(cell, avail):
    """Free threads per core of the cell: [(core threads, free threads)]."""
    seen, cores = set(), []
    for cpu in cell.cpus:
        group = frozenset(cpu.siblings or {cpu.id}) & cell.cpu_ids
        if group in seen:
            continue
        seen.add(group)
        cores.append((group, group & avail))
    return cores


def _pin(guest, cell, avail, reasons):
    """((vCPU, pCPU) pairs, reserved, emulator) or None with a reason."""
    n = len(guest.pinned)
    if len(avail) < n + guest.extra_pcpus:
        reasons.append(
            _reason(
                "numa.not-enough-pcpus",
                f"guest cell {guest.id} needs {n + guest.extra_pcpus} "
                f"dedicated CPU(s); host cell {cell.id} has {len(avail)} "
                "free",
                cell,
                guest,
                n + guest.extra_pcpus,
                len(avail),
            )
        )
        return None
    cores = _cores(cell, avail)
    reserved = frozenset()
    if not n:
        taken = []
    elif guest.thread_policy == "isolate":
        chosen = _isolate(guest, cell, cores, reasons)
        if chosen is None:
            return None
        taken = [min(c) for c in chosen]
        reserved = frozenset().union(*chosen) - set(taken)
    elif guest.thread_policy == "require":
        taken = _require(guest, cell, cores, reasons)
        if taken is None:
            return None
    else:  # prefer, or nothing: pack threads of the freest cores first
        ordered = sorted(
            (free for _, free in cores if free),
            key=lambda f: (-len(f), min(f)),
        )
        taken = [t for free in ordered for t in sorted(free)][:n]
    left = avail - set(taken) - reserved
    if guest.thread_policy == "isolate":
        left -= frozenset().union(*(c for c, _ in cores if c & set(taken)))
    emulator = _emulator(cores, left, guest.extra_pcpus)
    if len(emulator) < guest.extra_pcpus:
        reasons.append(
            _reason(
                "numa.not-enough-pcpus",
                f"hw:cpu_thread_policy=isolate keeps the cores of guest "
                f"cell {guest.id}'s {n} pinned vCPU(s) to itself; host cell "
                f"{cell.id} has no other free dedicated CPU for the "
                "isolated emulator thread",
                cell,
                guest,
                n + guest.extra_pcpus,
                n + len(left),
            )
        )
        return None
    return (
        tuple(zip(guest.pinned, taken, strict=True)),
        reserved,
        emulator,
    )


def _emulator(cores, left, count):
    """``count`` CPUs of ``left`` for the isolated emulator thread: from
    the cores with the fewest of them free first, so whole free cores
    stay whole for the next ``isolate`` or ``require`` guest."""
    if not count:
        return frozenset()
    room = {p: len(f & left) for _, f in cores for p in f}
    return frozenset(sorted(left, key=lambda p: (room[p], p))[:count])


def _isolate(guest, cell, cores, reasons):
    """The whole free cores for the pinned vCPUs, one each, or None.

    Whole means every thread free, on a core of the cell's full thread
    count (Nova's ``threads_per_core``); the siblings stay empty."""
    need = len(guest.pinned)
    threads = max(len(c) for c, _ in cores)
    whole = sorted((c for c, free in cores if len(free) == threads), key=min)
    if len(whole) < need:
        reasons.append(
            _reason(
                "numa.not-enough-free-cores",
                f"hw:cpu_thread_policy=isolate needs {need} whole free "
                f"core(s) on host cell {cell.id}; it has {len(whole)}",
                cell,
                guest,
                need,
                len(whole),
            )
        )
        return None
    return whole[:need]


def _require(guest, cell, cores, reasons):
    """Host CPUs for the pinned vCPUs on sibling threads, or None.

    As Nova: the most threads per core ``t`` (at least 2) such that
    cores with ``t`` free threads each hold them all, ``t`` from each,
    the freest cores first."""
    need = len(guest.pinned)
    threads = max(len(c) for c, _ in cores)
    if threads < 2:
        reasons.append(
            _reason(
                "numa.thread-policy-require-no-smt",
                f"hw:cpu_thread_policy=require needs SMT; host cell "
                f"{cell.id} has one thread per core",
                cell,
                guest,
            )
        )
        return None
    best = 0
    for t in range(threads, 1, -1):
        usable = sorted(
            (free for _, free in cores if len(free) >= t),
            key=lambda f: (-len(f), min(f)),
        )
        if t * len(usable) >= need:
            return [x for f in usable for x in sorted(f)[:t]][:need]
        best = max(best, t * len(usable))
    reasons.append(
        _reason(
            "numa.not-enough-free-cores",
            f"hw:cpu_thread_policy=require needs {need} thread(s) on cores "
            f"with at least 2 free sibling threads each on host cell "
            f"{cell.id}; they hold {best}",
            cell,
            guest,
            need,
            best,
        )
    )
    return None


# -- answers, once per guest cell shape -----------------------------------


def shape(guest):
    """What ``fit_cell`` depends on besides the guest cell's ids.

    The vCPU ids only name the pinned pairs and the guest cell id only
    the answer and its messages, so guest cells of one shape get the same
    host CPUs on the same host cell (a guest's cells are usually all
    alike: one computation per host cell instead of one per pair)."""
    return (
        guest.memory_mb,
        len(guest.pinned),
        len(guest.shared),
        guest.thread_policy,
        guest.pagesize,
        guest.extra_pcpus,
        guest.pinned_guest,
        guest.limited,
    )


#: the guest cell id an answer is computed under, bound to the real one
#: after: ``fit_cell`` uses the id only to name things
_UNNAMED = "\x00guest cell\x00"


class CellAnswers:
    """``fit_cell`` for (guest cell, host cell) pairs, asked lazily.

    Each pair is independent of every other (distinct host cells), so an
    answer is computed at most once per (shape, host cell), under a
    placeholder guest cell id, and only when the search or a rejection
    asks for it; ``get`` binds it to the guest cell that asked."""

    def __init__(self, topology, usage_of, restrictions, limits=None):
        self.topology = topology
        self.usage_of = usage_of  # host cell id -> CellUsage
        self.restrictions = restrictions
        self.limits = limits
        self.memo = {}
        #: guest cell id (unique) -> (shape, the guest cell unnamed)
        self.shapes = {}

    def like(self, guest, h):
        """The answer for a guest cell of ``guest``'s shape, unbound:
        enough to compare host cells, not to hand out."""
        got = self.shapes.get(guest.id)
        if got is None:
            got = self.shapes[guest.id] = (
                shape(guest),
                dataclasses.replace(guest, id=_UNNAMED),
            )
        form, unnamed = got
        key = (form, h)
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = fit_cell(
                unnamed,
                self.topology.cell(h),
                self.usage_of(h),
                self.restrictions,
                self.limits,
            )
        return got

    def fits(self, guest, h):
        return not isinstance(self.like(guest, h), list)

    def get(self, guest, h):
        """CellPlacement, or the Reasons why not, naming ``guest``."""
        answer = self.like(guest, h)
        if isinstance(answer, list):
            name = str(guest.id)
            return [
                Reason(
                    r.code,
                    r.message.replace(_UNNAMED, name),
                    r.host_cell,
                    guest.id,
                    r.requested,
                    r.available,
                )
                for r in answer
            ]
        return dataclasses.replace(
            answer,
            guest_cell=guest.id,
            cpu_pinning=tuple(
                zip(
                    guest.pinned,
                    (p for _, p in answer.cpu_pinning),
                    strict=True,
                )
            ),
        )
