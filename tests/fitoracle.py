"""Is there *any* valid placement?  A brute force written from Nova's
documented semantics, not from the fitter.

The fitter builds one placement cleverly; this module only answers
yes/no, by trying every injective map of guest cells to host cells and
judging each pair with its own counting rules.  It imports nothing from
``nova_slices.fit``, and none of the checker's per-cell rules
(tests/fitcheck.py): only plain readers of the host model (CPU pools,
cores, usage, reserved pages) and the PCI matching helpers.  Where the
fitter and this oracle share a mistake, the differential run against
Nova's own code (tests/novafit.py) is the third opinion.

Per guest cell on a host cell (Nova's ``_numa_fit_instance_cell``, its
admin guide on CPU topologies and huge pages):

* a host cell without CPUs never takes a guest cell;
* memory without a page size: from the smallest page pool; a guest whose
  CPU policy pins (``dedicated``, ``mixed``) needs that much *free*
  (every cell of it, whether or not the cell has dedicated vCPUs), any
  other guest fits in the pool's total; a cell without pools counts its
  memory the same way (free = memory minus used);
* memory with a page size: ``small`` the smallest pool, ``large`` any
  other, ``any`` any, a number that pool; the memory a whole number of
  pages, that many free after usage and ``reserved_huge_pages``;
* dedicated vCPUs (and guest cell 0's isolated emulator thread): that
  many free CPUs of the dedicated pool; thread policies act on the
  dedicated vCPUs only: ``isolate`` one whole free core (all threads
  free, the cell's full thread count) per vCPU, the emulator thread
  outside those cores; ``require`` an SMT cell and some ``t >= 2`` with
  ``t`` times the cores having ``t`` free threads at least the vCPUs;
* shared vCPUs: no more than the shared pool's CPUs.

One rule of this project's own, stricter than Nova and documented in the
README: shared vCPUs never float over the CPUs the same guest cell pins,
reserves or gives its emulator thread (it matters only on a host with
neither CPU set, where every CPU is in both pools).

PCI: every choice of distinct free devices for the requested slots,
against the NUMA policy relative to the chosen host cells.
"""

import itertools

from tests.fitcheck import (
    alias_matches,
    core_of,
    free_devices,
    on_cells,
    pci_slots,
    pools_of,
    reserved_pages,
    usage_of,
)


def brute_force(topology, request, usage, restrictions, devices, aliases):
    """Host cells, one per guest cell, satisfying everything; or None."""
    ids = [c.id for c in topology.cells]
    fits = {
        (g.id, c.id): cell_fits(g, c, request, usage, restrictions)
        for g in request.cells
        for c in topology.cells
    }
    for hosts in itertools.permutations(ids, len(request.cells)):
        if all(
            (g.host_cell is None or g.host_cell == h) and fits[(g.id, h)]
            for g, h in zip(request.cells, hosts, strict=True)
        ) and pci_fits(
            request, aliases, devices, usage, frozenset(hosts), topology
        ):
            return hosts
    return None


def cell_fits(guest, cell, request, usage, restrictions):
    """Can ``guest`` go on ``cell``?"""
    if not cell.cpus:
        return False
    return memory_fits(guest, cell, request, usage, restrictions) and (
        cpus_fit(guest, cell, request, usage, restrictions)
    )


# -- memory -------------------------------------------------------------------


def _pools(cell, usage, restrictions):
    """{page size KiB: (total pages, free pages)} of ``cell``."""
    _, used, _ = usage_of(usage, cell.id)
    return {
        p.size_kb: (
            p.total,
            p.total
            - used.get(p.size_kb, 0)
            - reserved_pages(restrictions, cell.id, p.size_kb),
        )
        for p in cell.pages
    }


def memory_fits(guest, cell, request, usage, restrictions):
    need_kb = guest.memory_mb * 1024
    pools = _pools(cell, usage, restrictions)
    no_overcommit = request.cpu_policy in ("dedicated", "mixed")
    if request.pagesize is None:
        if not pools:
            _, _, used_mb = usage_of(usage, cell.id)
            have_mb = cell.memory_kb // 1024
            if no_overcommit:
                have_mb -= used_mb
            return guest.memory_mb <= have_mb
        smallest = min(pools)
        total, free = pools[smallest]
        return need_kb <= (free if no_overcommit else total) * smallest
    sizes = sorted(pools)
    wanted = {
        "small": sizes[:1],
        "large": sizes[1:],
        "any": sizes,
    }.get(request.pagesize, [request.pagesize])
    return any(
        size in pools
        and need_kb % size == 0
        and need_kb // size <= pools[size][1]
        for size in wanted
    )


# -- CPUs ---------------------------------------------------------------------


def cpus_fit(guest, cell, request, usage, restrictions):
    ded, shared = pools_of(cell, restrictions)
    pinned_now, _, _ = usage_of(usage, cell.id)
    free = ded - pinned_now
    n = len(guest.pcpus)
    emulator = int(
        request.emulator_threads_policy == "isolate" and guest.id == 0
    )
    if n + emulator > len(free):
        return False
    cores = {core_of(cell, c.id) for c in cell.cpus}
    threads = max(len(c) for c in cores)
    own = n + emulator  # CPUs this guest cell holds for itself
    if n and request.cpu_thread_policy == "isolate":
        whole = [c for c in cores if len(c) == threads and c <= free]
        if len(whole) < n or len(free) - n * threads < emulator:
            return False
        own = n * threads + emulator
    elif n and request.cpu_thread_policy == "require":
        if threads < 2 or not any(
            t * sum(1 for c in cores if len(c & free) >= t) >= n
            for t in range(2, threads + 1)
        ):
            return False
    floating = len(guest.cpus - guest.pcpus)
    if floating:
        if floating > len(shared):
            return False
        # the project's stricter rule (module docstring): when the pools
        # overlap, the shared vCPUs need a CPU the cell does not hold
        if shared & ded and len(shared) <= own:
            return False
    return True


# -- PCI ----------------------------------------------------------------------


def pci_fits(request, aliases, devices, usage, cells, topology):
    """Try every sequence of distinct free devices for the slots."""
    slots = pci_slots(request, aliases)
    if not slots:
        return True
    free = free_devices(devices, usage.pci_devices_in_use)
    for chosen in itertools.permutations(free, len(slots)):
        if all(
            alias_matches(spec, d) and on_cells(d, policy, cells, topology)
            for d, (_, spec, policy) in zip(chosen, slots, strict=True)
        ):
            return True
    return False
