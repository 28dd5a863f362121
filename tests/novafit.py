"""This project's fitter and Nova's ``numa_fit_instance_to_host`` on the
same random cases, every disagreement sorted into a known class.

A case is plain data (``random_case``): host cells (cores, threads,
sockets, 4K/2M/1G page pools or none, ``cpu_dedicated_set`` /
``cpu_shared_set`` or neither, reserved huge pages, pinned CPUs, shared
CPU usage, memory and page usage) and a flavor (cells, CPU policy
shared/dedicated/mixed with a dedicated mask, thread policy, emulator
threads policy, page size).  Nova's side is built the way Nova builds it:
``objects.NUMATopology`` for the host, ``hardware.numa_get_constraints``
of an ``objects.Flavor`` for the guest.  Ours reads the same Nova objects
through the code ``NUMAFitFilter`` runs (``nova_slices.nova.numa``), so
the inputs cannot drift apart.

Outcomes:

* both fit: our placement must pass the independent checker
  (tests/fitcheck.py), and every guest cell of it Nova's own per-cell
  check (``hardware._numa_fit_instance_cell``) on the host cell we chose,
  with the page size we chose;
* both refuse: agreement;
* one fits, the other does not, or Nova's per-cell check refuses a cell
  we chose: a disagreement, which ``NovaFit`` explains by classes of
  ``CLASSES`` -- Nova's own code, with the faulty step corrected, gives
  our answer -- or leaves unexplained.

About a third of the cases (``run_cases``) carry over-subscription
limits (``NUMATopologyLimits`` with random CPU and RAM allocation ratios,
as Nova's filter and claim pass them), given to both sides alike: Nova's
whole-host fit, its per-cell check and its re-enactment, and our fitter
through ``nova_slices.nova.numa.limits_of``; the rest pass none, as
before.  PCI requests are compared elsewhere (tests/nova_functional);
this module leaves them out.
"""

import collections
import copy
import dataclasses
import itertools
import logging
import random

from nova_slices.errors import NovaSlicesError
from nova_slices.fit.fitter import fit
from nova_slices.fit.model import Placement
from nova_slices.nova.numa import host_model, limits_of, request_of
from tests.fitcheck import check_placement
from tests.unit.test_request_vs_nova import load_nova

G1 = 1048576

# -- cases ---------------------------------------------------------------


def random_case(rng):
    """One case as plain data (JSON-able, so a failure prints it)."""
    cells, first = [], 0
    for cid in range(rng.choice([1, 2, 2, 3, 3, 4])):
        threads = rng.choice([1, 1, 2, 2, 2, 4])
        cores = 0 if rng.random() < 0.08 else rng.randint(1, 8 // threads)
        cpus = list(range(first, first + cores * threads))
        first += len(cpus)
        pools = rng.random() < 0.85
        small_mb = rng.choice([512, 1024, 2048, 4096, 8192])
        huge = {}
        if pools:
            huge[2048] = rng.choice([0, 0, 256, 512, 1024])
            huge[G1] = rng.choice([0, 0, 1, 2])
        cells.append(
            {
                "id": cid,
                "cpus": cpus,
                "siblings": [
                    cpus[i : i + threads] for i in range(0, len(cpus), threads)
                ],
                "socket": cid // 2,
                "small_mb": small_mb,
                "pools": pools,
                "huge": {str(k): v for k, v in huge.items()},
            }
        )
    all_cpus = [c for cell in cells for c in cell["cpus"]]
    mode = rng.choice(["legacy"] * 5 + ["both"] * 4 + ["dedicated"])
    dedicated, shared = set(all_cpus), set(all_cpus)
    if mode == "both":
        role = {c: rng.choice("ddss") for c in all_cpus}
        dedicated = {c for c in all_cpus if role[c] == "d"}
        shared = {c for c in all_cpus if role[c] == "s"}
    elif mode == "dedicated":
        shared = set()
    for cell in cells:
        _random_usage(rng, cell, dedicated)
    return {
        "cpu_sets": mode,
        "dedicated": sorted(dedicated),
        "shared": sorted(shared),
        "cells": cells,
        "guest": _random_guest(rng, len(cells)),
    }


def random_limits(rng):
    """None, or CPU and RAM allocation ratios (a third of the cases)."""
    if rng.random() < 2 / 3:
        return None
    return {
        "cpu": rng.choice([0.5, 1.0, 1.0, 1.5, 2.0, 4.0]),
        "ram": rng.choice([0.5, 0.75, 1.0, 1.0, 1.5]),
    }


def nova_limits(nova, case):
    limits = case.get("limits")
    if limits is None:
        return None
    return nova.objects.NUMATopologyLimits(
        cpu_allocation_ratio=limits["cpu"],
        ram_allocation_ratio=limits["ram"],
    )


def _random_usage(rng, cell, dedicated):
    mine = [c for c in cell["cpus"] if c in dedicated]
    busy = rng.choice([0, 0, 0, 0.25, 0.5])
    cell["pinned"] = sorted(c for c in mine if rng.random() < busy)
    cell["cpu_usage"] = rng.choice([0, 0, 1, 3])
    pages, reserved = {}, {}
    sizes = [4] + [int(s) for s in cell["huge"]] if cell["pools"] else []
    for size in sizes:
        total = _pool_total(cell, size)
        reserved[size] = (
            min(total, rng.choice([0, 0, 0, 1, total // 2]))
            if size != 4
            else 0
        )
        room = total - reserved[size]
        pages[size] = min(room, rng.choice([0, 0, 0, 1, room // 2, room]))
    cell["pages_used"] = {str(k): v for k, v in pages.items()}
    cell["pages_reserved"] = {str(k): v for k, v in reserved.items()}
    cell["memory_usage"] = rng.choice([0, 0, _memory_mb(cell) // 2])


def _pool_total(cell, size):
    if size == 4:
        return cell["small_mb"] * 256
    return cell["huge"][str(size)]


def _memory_mb(cell):
    huge = sum(int(s) * n for s, n in cell["huge"].items()) // 1024
    return cell["small_mb"] + huge


def _random_guest(rng, host_cells):
    nodes = rng.choice([1, 1, 2, 2, 3])
    # now and then more guest cells than host cells
    nodes = min(nodes, host_cells + int(rng.random() < 0.05))
    policy = rng.choice([None, "shared", "dedicated", "dedicated", "mixed"])
    policy = policy if rng.random() < 0.9 else "mixed"
    specs = {"hw:numa_nodes": str(nodes)}
    sizes = [256, 512, 1024, 1024, 1536, 2048, 3072]
    if nodes > 1 and rng.random() < 0.5:
        vcpus = rng.randint(nodes, 2 * nodes + 1)
        owner = list(range(nodes)) + [
            rng.randrange(nodes) for _ in range(vcpus - nodes)
        ]
        rng.shuffle(owner)
        memory = 0
        for n in range(nodes):
            specs[f"hw:numa_cpus.{n}"] = ",".join(
                str(v) for v in range(vcpus) if owner[v] == n
            )
            mb = rng.choice(sizes)
            specs[f"hw:numa_mem.{n}"] = str(mb)
            memory += mb
    else:
        vcpus = nodes * rng.choice([1, 1, 2, 2, 3])
        memory = nodes * rng.choice(sizes)
    if policy == "mixed" and vcpus < 2:
        policy = "dedicated"
    if policy:
        specs["hw:cpu_policy"] = policy
    if policy == "mixed":
        mask = rng.sample(range(vcpus), rng.randint(1, vcpus - 1))
        specs["hw:cpu_dedicated_mask"] = ",".join(map(str, sorted(mask)))
    if policy in ("dedicated", "mixed"):
        thread = rng.choice([None, None, "prefer", "isolate", "require"])
        if thread:
            specs["hw:cpu_thread_policy"] = thread
        emulator = rng.choice([None, None, "share", "isolate"])
        if emulator:
            specs["hw:emulator_threads_policy"] = emulator
    elif rng.random() < 0.2:
        specs["hw:emulator_threads_policy"] = "share"
    page = rng.choice(
        [None] * 5 + ["small", "large", "any", "4", "2048", "1GB"]
    )
    if page:
        specs["hw:mem_page_size"] = page
    return {"vcpus": vcpus, "memory_mb": memory, "extra_specs": specs}


# -- both sides' inputs --------------------------------------------------


def nova_host(nova, case):
    o = nova.objects
    out = []
    for c in case["cells"]:
        sizes = [4] + [int(s) for s in c["huge"]] if c["pools"] else []
        out.append(
            o.NUMACell(
                id=c["id"],
                cpuset=set(c["cpus"]) & set(case["shared"]),
                pcpuset=set(c["cpus"]) & set(case["dedicated"]),
                memory=_memory_mb(c),
                cpu_usage=c["cpu_usage"],
                memory_usage=c["memory_usage"],
                pinned_cpus=set(c["pinned"]),
                siblings=[set(s) for s in c["siblings"]],
                mempages=[
                    o.NUMAPagesTopology(
                        size_kb=s,
                        total=_pool_total(c, s),
                        used=c["pages_used"][str(s)],
                        reserved=c["pages_reserved"][str(s)],
                    )
                    for s in sizes
                ],
                network_metadata=o.NetworkMetadata(
                    physnets=set(), tunneled=False
                ),
                socket=c["socket"] if c["cpus"] else None,
            )
        )
    return o.NUMATopology(cells=out)


def nova_flavor(nova, case):
    g = case["guest"]
    flavor = nova.objects.Flavor(
        vcpus=g["vcpus"],
        memory_mb=g["memory_mb"],
        extra_specs=dict(g["extra_specs"]),
        name="diff",
    )
    return flavor, nova.objects.ImageMeta.from_dict({"properties": {}})


# -- running one case ----------------------------------------------------


@dataclasses.dataclass
class Result:
    """What happened to one case.  ``kind``: ``skipped`` (no NUMA
    request, or a request one side refuses: the request tables compare
    those), ``agree-fit``, ``agree-no-fit``, ``ours-only`` (we fit, Nova
    does not), ``nova-only``, ``ours-invalid`` (both fit, but Nova's
    per-cell check refuses a cell of ours).  ``labels``: the names of the
    classes that explain a disagreement (empty: unexplained)."""

    kind: str
    case: dict
    labels: tuple = ()
    detail: str = ""

    @property
    def disagreement(self):
        return self.kind in ("ours-only", "nova-only", "ours-invalid")


class Differ:
    """Runs cases; holds Nova's modules (imported once)."""

    def __init__(self):
        self.nova = load_nova()
        logging.getLogger("nova").setLevel(logging.ERROR)

    def run(self, case):
        nova = self.nova
        host = nova_host(nova, case)
        flavor, image = nova_flavor(nova, case)
        try:
            instance = nova.hardware.numa_get_constraints(flavor, image)
            request = request_of(flavor, image)
        except (nova.exception.Invalid, NovaSlicesError) as exc:
            return Result("skipped", case, detail=type(exc).__name__)
        if instance is None or not request.cells:
            return Result("skipped", case, detail="no NUMA request")
        topology, usage, restrictions = host_model(host)
        limits = nova_limits(nova, case)
        ours = fit(
            topology, request, usage, restrictions, limits=limits_of(limits)
        )
        theirs = nova.hardware.numa_fit_instance_to_host(
            host, copy.deepcopy(instance), None, limits=limits
        )
        refit = NovaFit(nova, host, instance, limits)
        if isinstance(ours, Placement):
            bad = check_placement(topology, request, ours, usage, restrictions)
            if bad:  # a project bug, whatever Nova says
                return Result("ours-invalid", case, (), "; ".join(bad))
            cells = [
                (i, cp.host_cell, cp.pagesize_kb)
                for i, cp in enumerate(ours.cells)
            ]
            refused = refit.refused(cells, frozenset())
            if refused:
                return Result(
                    "ours-invalid",
                    case,
                    refit.explain_cells(cells),
                    "Nova refuses " + ", ".join(refused),
                )
            if theirs is None:
                return Result("ours-only", case, refit.explain(True, False))
            return Result("agree-fit", case)
        if theirs is not None:
            return Result(
                "nova-only",
                case,
                refit.explain(False, True),
                " ".join(sorted({r.code for r in ours.reasons})),
            )
        return Result("agree-no-fit", case)


# -- Nova, one faulty step corrected at a time -----------------------------


@dataclasses.dataclass(frozen=True)
class Class:
    """One explained kind of disagreement.  ``kind``: ``nova-bug`` (its
    Launchpad number in ``tracker``, or None when none was found) or
    ``deliberate`` (this project is stricter than Nova on purpose; the
    README says so).  How each is *proved* on a case is in ``NovaFit``:
    Nova's own code, with that one step corrected, answers as we do."""

    name: str
    kind: str
    tracker: str | None
    explanation: str


CACHE_KEYS = Class(
    "nova-fit-cache-keys",
    "nova-bug",
    None,
    "numa_fit_instance_to_host caches answers per (host cell id, instance "
    "cell id), but _numa_fit_instance_cell overwrites the instance cell's "
    "id with the host cell's, so later permutations read answers cached "
    "for other pairs: Nova then places a cell where its own per-cell "
    "check refuses it, or refuses a host it fits on",
)
PAGESIZE_CARRY_OVER = Class(
    "nova-pagesize-carry-over",
    "nova-bug",
    None,
    "_numa_fit_instance_cell writes the page size it chose (for small, "
    "large or any) into the instance cell, and numa_fit_instance_to_host "
    "reuses that object for every permutation: a cell that took 1G pages "
    "on one host cell is then refused where only 2M pages fit",
)
ISOLATE_CPU_SETS = Class(
    "nova-isolate-with-cpu-sets",
    "nova-bug",
    "1889633",
    "with cpu_dedicated_set (or cpu_shared_set) configured, Nova's "
    "packing refuses hw:cpu_thread_policy=isolate on every SMT host cell "
    "(it expects the scheduler to have excluded SMT hosts through the "
    "HW_CPU_HYPERTHREADING trait); this project isolates the siblings",
)
MIXED_CELL_WITHOUT_PCPUS = Class(
    "nova-mixed-cell-without-dedicated-vcpus",
    "nova-bug",
    None,
    "Nova runs its CPU packing on a mixed guest's cell that has no "
    "dedicated vCPU: hw:cpu_thread_policy=isolate then needs a whole "
    "free core, require an SMT cell, and with "
    "hw:emulator_threads_policy=isolate on such a guest cell 0 the "
    "emulator thread never gets its CPU (_get_reserved returns nothing "
    "without a pinned vCPU), so such a guest fits nowhere",
)
OWN_CPUS = Class(
    "shared-vcpus-off-own-pinned-cpus",
    "deliberate",
    None,
    "on a host with neither CPU set (every CPU dedicated and shared), "
    "this project never floats a guest cell's shared vCPUs over the CPUs "
    "the same cell pins, reserves (isolate) or gives its emulator thread; "
    "Nova only counts the cell's CPUs (README, fit)",
)

CLASSES = (
    CACHE_KEYS,
    PAGESIZE_CARRY_OVER,
    ISOLATE_CPU_SETS,
    MIXED_CELL_WITHOUT_PCPUS,
    OWN_CPUS,
)
#: the per-cell corrections, tried alone, then in pairs, then all
CELL_CORRECTIONS = (ISOLATE_CPU_SETS, MIXED_CELL_WITHOUT_PCPUS, OWN_CPUS)


class NovaFit:
    """Nova's fit of one case, re-run with faulty steps corrected.

    ``loop`` re-enacts ``numa_fit_instance_to_host`` (Nova's host-cell
    order, its permutations, its caches, its mutation of the instance
    cells) calling Nova's own ``_numa_fit_instance_cell``; re-enacted
    as Nova does it, it must give Nova's answer (checked on every case
    it explains), and then the same loop with one step changed says
    whether that step made the difference."""

    def __init__(self, nova, host, instance, limits=None):
        self.nova = nova
        self.host = host
        self.instance = instance
        self.limits = limits  # NUMATopologyLimits or None
        fields = nova.objects.fields
        self.MIXED = fields.CPUAllocationPolicy.MIXED
        self.SHARED = fields.CPUAllocationPolicy.SHARED
        self.ISOLATE = fields.CPUThreadAllocationPolicy.ISOLATE

    # -- one cell

    def cell(self, host_cell, cell, index, corrections):
        """Nova's per-cell check of ``cell`` (guest cell ``index``, an
        object Nova may change) on ``host_cell``, corrected."""
        hardware = self.nova.hardware
        reserved = int(index == 0 and self.instance.emulator_threads_isolated)
        ok = True
        if (
            MIXED_CELL_WITHOUT_PCPUS in corrections
            and _field(cell, "cpu_policy") == self.MIXED
            and not cell.pcpuset
        ):
            # no dedicated vCPU: no thread policy to apply; the emulator
            # thread needs one free dedicated CPU
            cell.cpu_thread_policy = None
            ok = len(host_cell.free_pcpus) >= reserved
            reserved = 0
        if (
            ISOLATE_CPU_SETS in corrections
            and _field(cell, "cpu_thread_policy") == self.ISOLATE
            and host_cell.cpuset != host_cell.pcpuset
        ):
            # judge the siblings as on a host without CPU sets, keeping
            # the shared-CPU count of the real one (and its CPU limit)
            ok = ok and len(cell.cpuset) <= len(host_cell.cpuset)
            if self.limits is not None and _field(cell, "cpu_policy") in (
                None,
                self.SHARED,
                self.MIXED,
            ):
                ok = ok and (
                    host_cell.cpu_usage + len(cell.cpuset)
                    <= len(host_cell.cpuset) * self.limits.cpu_allocation_ratio
                )
            host_cell = copy.deepcopy(host_cell)
            host_cell.cpuset = set(host_cell.pcpuset)
        try:
            got = hardware._numa_fit_instance_cell(
                host_cell, cell, self.limits, reserved
            )
        except self.nova.exception.MemoryPageSizeNotSupported:
            got = None
        if got is None or not ok:
            return None
        if OWN_CPUS in corrections and not self._room_for_shared(
            host_cell, got
        ):
            return None
        return got

    def _room_for_shared(self, host_cell, got):
        """This project's rule: shared vCPUs need a CPU of the cell's
        shared pool the cell itself does not hold."""
        if not got.cpuset:
            return True
        held = set((_field(got, "cpu_pinning_raw") or {}).values())
        held |= set(_field(got, "cpuset_reserved") or ())
        if _field(got, "cpu_thread_policy") == self.ISOLATE:
            for sib in host_cell.siblings:
                if sib & held:
                    held |= sib
        return bool(set(host_cell.cpuset) - held)

    def fresh_cell(self, host_cell, index, corrections):
        cell = copy.deepcopy(self.instance.cells[index])
        return self.cell(host_cell, cell, index, corrections)

    def refused(self, cells, corrections):
        """Which of ``cells`` -- (guest cell, host cell, page size) --
        Nova's per-cell check refuses, as text; where the guest asked for
        a page size, choosing another one counts as refused."""
        bad = []
        by_id = {c.id: c for c in self.host.cells}
        for index, host_id, pagesize in cells:
            got = self.fresh_cell(by_id[host_id], index, corrections)
            asked = _field(self.instance.cells[index], "pagesize")
            if got is None or (asked and got.pagesize != pagesize):
                bad.append(f"guest cell {index} on host cell {host_id}")
        return bad

    # -- the whole guest

    def order(self):
        """Nova's host-cell order (spread; no PCI here)."""
        cells = list(self.host.cells)
        if len(cells) > len(self.instance.cells):
            cells = sorted(cells, reverse=True, key=lambda c: c.avail_memory)
            if self.instance.cells[0].cpu_policy in (None, self.SHARED):
                cells = sorted(cells, key=lambda c: c.cpu_usage)
            else:
                cells = sorted(
                    cells, reverse=True, key=lambda c: len(c.free_pcpus)
                )
        return cells

    def loop(self, mutate=True, cache="nova", corrections=frozenset()):
        """``numa_fit_instance_to_host`` re-enacted: does it fit?

        ``mutate``: one instance cell object per guest cell for every
        permutation, as Nova (False: a fresh copy for every check);
        ``cache``: ``"nova"`` keys by (host cell id, instance cell id)
        as Nova, ``"index"`` by the guest cell's index, None: none."""
        k = len(self.instance.cells)
        cells = copy.deepcopy(list(self.instance.cells))
        fitted, refused = set(), set()
        for perm in itertools.permutations(self.order(), k):
            done = 0
            for index, host_cell in enumerate(perm):
                cell = (
                    cells[index]
                    if mutate
                    else copy.deepcopy(self.instance.cells[index])
                )
                key = (host_cell.id, cell.id if cache == "nova" else index)
                if cache and key in refused:
                    break
                if cache and key in fitted:
                    cell.id = host_cell.id
                    done += 1
                    continue
                got = self.cell(host_cell, cell, index, corrections)
                if got is None:
                    refused.add(key)
                    break
                fitted.add(key)
                done += 1
            if done == k:
                return True
        return False

    def explain(self, ours_fit, nova_fit):
        """Labels of the classes that turn Nova's answer into ours."""
        assert self.loop() == nova_fit, "re-enactment differs from Nova"
        labels = []
        keys_fixed = self.loop(cache="index")
        if keys_fixed != nova_fit:
            labels.append(CACHE_KEYS.name)
        fresh = self.loop(mutate=False, cache=None)
        if fresh != keys_fixed:
            labels.append(PAGESIZE_CARRY_OVER.name)
        if fresh != ours_fit:
            found = self._smallest(
                lambda c: self.loop(False, None, c) == ours_fit
            )
            if found is None:
                return ()
            labels.extend(c.name for c in found)
        return tuple(labels)

    def explain_cells(self, cells):
        found = self._smallest(lambda c: not self.refused(cells, c))
        return () if found is None else tuple(c.name for c in found)

    @staticmethod
    def _smallest(works):
        for size in range(1, len(CELL_CORRECTIONS) + 1):
            for combo in itertools.combinations(CELL_CORRECTIONS, size):
                if works(frozenset(combo)):
                    return combo
        return None


def _field(obj, name):
    """A Nova object's field, None when unset (reading an unset field
    raises)."""
    return getattr(obj, name) if obj.obj_attr_is_set(name) else None


def run_cases(count, seed=15):
    """Counter of (kind, labels) over ``count`` cases, and the
    unexplained disagreements (at most 20 kept)."""
    differ = Differ()
    rng = random.Random(seed)
    # a stream of its own: the cases of a seed stay the cases they were
    limits_rng = random.Random(seed + 1)
    counts = collections.Counter()
    unexplained = []
    for _ in range(count):
        case = random_case(rng)
        case["limits"] = random_limits(limits_rng)
        result = differ.run(case)
        counts[(result.kind, result.labels)] += 1
        if result.disagreement and not result.labels:
            if len(unexplained) < 20:
                unexplained.append(result)
    return counts, unexplained
