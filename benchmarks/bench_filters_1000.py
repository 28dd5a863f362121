"""The scheduler filters over 1000 host states: time per scheduling request.

A scheduling request runs a filter once per host; what an operator waits
for is that sum.  Here 1000 Nova host states of mixed sizes (16-cell hosts
the majority, then 8, 4 and 2 cells; 12 pinnable and 4 shared CPUs, 32
GiB and 8 GiB of 2M pages a cell; half of the hosts partly used, seeded)
go through, in the same run and alternating per repetition:

* ``NUMAFitFilter`` and Nova's ``NUMATopologyFilter`` for a few flavors
  (dedicated 2x8, mixed, 2M pages, a guest cell pinned with
  ``hw:numa_node.N``, which Nova does not read: its answers differ by
  design there).  Printed: p50 and p95 ms per request (all 1000 hosts),
  hosts passed, and ours / Nova's.
* ``SliceChainFilter`` over 1000 slice hosts whose allocation candidates
  are those of the 1-, 2-, 4- and 8-GPU slice flavors (a quarter of them
  broken chains, which it must drop), the provider trees already cached
  as after the first request; printed beside Nova's NUMATopologyFilter on
  the dedicated flavor, for scale.

The Placement trait read of ``NUMAFitFilter`` (socket-policy requests
only, none here) is stubbed as in ``bench_numa_filter.py``.

    .venv/bin/python benchmarks/bench_filters_1000.py [--reps N] [--hosts N]
"""

import argparse
import os
import random
import statistics
import sys
import time
import types
import uuid
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.fit import nova_child  # noqa: E402

#: (cells, share of hosts)
SIZES = ((16, 0.55), (8, 0.2), (4, 0.15), (2, 0.1))
PINNED, SHARED, MEMORY_MB, HUGE_2M = 12, 4, 32768, 4096
FLAVORS = {
    "dedicated 2x8": (
        16,
        16384,
        {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "2"},
    ),
    "mixed": (
        8,
        8192,
        {"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "^0-1"},
    ),
    "hugepages 2M": (4, 4096, {"hw:mem_page_size": "2MB"}),
    "pinned numa_node": (
        8,
        8192,
        {
            "hw:cpu_policy": "dedicated",
            "hw:numa_nodes": "2",
            "hw:numa_node.0": "1",
            "hw:numa_node.1": "0",
        },
    ),
}
#: slice flavor -> candidates per host (1-GPU: 5.5 on average in
#: the Placement figure of issue 16)
SLICE_CANDIDATES = {"1_GPU": 6, "2_GPU": 4, "4_GPU": 2, "8_GPU": 1}


def cell(o, cid, rng, used):
    first = cid * (PINNED + SHARED)
    pcpus = set(range(first, first + PINNED))
    cpus = set(range(first + PINNED, first + PINNED + SHARED))
    allcpus = sorted(pcpus | cpus)
    pinned = (
        set(rng.sample(sorted(pcpus), rng.randint(0, 10))) if used else set()
    )
    huge_used = rng.choice((0, 1024, 2048)) if used else 0
    return o.NUMACell(
        id=cid,
        cpuset=cpus,
        pcpuset=pcpus,
        memory=MEMORY_MB,
        cpu_usage=rng.randint(0, SHARED) if used else 0,
        memory_usage=rng.choice((0, 8192, 16384)) if used else 0,
        pinned_cpus=pinned,
        siblings=[set(allcpus[i : i + 2]) for i in range(0, len(allcpus), 2)],
        mempages=[
            o.NUMAPagesTopology(
                size_kb=4,
                total=(MEMORY_MB - HUGE_2M) * 256,
                used=0,
                reserved=0,
            ),
            o.NUMAPagesTopology(
                size_kb=2048, total=HUGE_2M // 2, used=huge_used, reserved=0
            ),
        ],
        network_metadata=o.NetworkMetadata(physnets=set(), tunneled=False),
        socket=0 if cid < 8 else 1,
    )


def host_states(o, n, rng):
    sizes = [s for s, share in SIZES for _ in range(round(share * n))]
    sizes = (sizes + [16] * n)[:n]
    rng.shuffle(sizes)
    states = []
    for i, cells in enumerate(sizes):
        used = i % 2 == 1
        topo = o.NUMATopology(
            cells=[cell(o, c, rng, used) for c in range(cells)]
        )
        states.append(
            types.SimpleNamespace(
                host=f"host{i}",
                nodename=f"host{i}",
                uuid=str(uuid.UUID(int=i + 1)),
                numa_topology=topo,
                pci_stats=None,
                cpu_allocation_ratio=1.0,
                ram_allocation_ratio=1.0,
                limits={},
                allocation_candidates=[{"mappings": {}, "allocations": {}}],
            )
        )
    return states


def per_request(filt, states, spec):
    """ms to run ``filt`` over every host once, and how many passed."""
    for s in states:
        s.allocation_candidates = list(s.candidates_copy)
    start = time.perf_counter()
    passed = sum(1 for s in states if filt.host_passes(s, spec))
    return (time.perf_counter() - start) * 1000, passed


def slice_hosts(n, rng):
    """(states, {root: {provider: parent}}): each host a root, 2 sockets
    of 2 cells of 2 GPUs; candidates of each slice flavor, a quarter of
    them broken chains (the leaf under another cell)."""
    from nova_slices.slices.encoding import SLICE_GROUP, ancestor_group

    states, parents = {}, {}
    for i in range(n):
        root = str(uuid.UUID(int=10**6 + i))
        tree = {root: None}
        leaves = []
        for s in range(2):
            sock = f"{root}/s{s}"
            tree[sock] = root
            for c in range(2):
                cel = f"{sock}/c{c}"
                tree[cel] = sock
                for g in range(2):
                    leaf = f"{cel}/g{g}"
                    tree[leaf] = cel
                    leaves.append(leaf)
        parents[root] = tree
        by_level = {
            "1_GPU": leaves,
            "2_GPU": [p for p in tree if p.count("/") == 2],
            "4_GPU": [p for p in tree if p.count("/") == 1],
            "8_GPU": [root],
        }
        for flavor, count in SLICE_CANDIDATES.items():
            cands = []
            for _ in range(count):
                below = rng.choice(by_level[flavor])
                chain, up = [], tree[below]
                while up is not None:
                    chain.append(up)
                    up = tree[up]
                if chain and len(chain) > 1 and rng.random() < 0.25:
                    # broken: the parent group on another branch
                    level = "2_GPU" if flavor == "1_GPU" else "4_GPU"
                    chain[0] = rng.choice(
                        [p for p in by_level[level] if p != chain[0]]
                    )
                mappings = {SLICE_GROUP: [below]}
                for level, p in enumerate(chain, 1):
                    mappings[ancestor_group(level)] = [p]
                cands.append({"mappings": mappings, "allocations": {}})
            states.setdefault(flavor, []).append(
                types.SimpleNamespace(
                    host=f"slice{i}",
                    nodename=f"slice{i}",
                    uuid=root,
                    allocation_candidates=cands,
                    candidates_copy=list(cands),
                )
            )
    return states, parents


def fmt(times):
    times = sorted(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    nova = nova_child.NovaInputs(nova_child.load_nova())
    o = nova.objects
    from nova.scheduler.filters import numa_topology_filter

    from nova_slices.nova.filters import NUMAFitFilter, SliceChainFilter

    class TraitedHost(NUMAFitFilter):
        def _has_socket_trait(self, host_state, spec_obj):
            return True

    rng = random.Random(args.seed)
    states = host_states(o, args.hosts, rng)
    for s in states:
        s.candidates_copy = list(s.allocation_candidates)
    ours_f, nova_f = TraitedHost(), numa_topology_filter.NUMATopologyFilter()
    mix = ", ".join(f"{c} cells {p:.0%}" for c, p in SIZES)
    print(
        f"{args.hosts} host states ({mix}; half partly used), "
        f"{args.reps} requests each, ours and Nova's alternating"
    )
    head = (
        f"{'flavor':18} | {'ours p50':>8} | {'ours p95':>8} | "
        f"{'nova p50':>8} | {'nova p95':>8} | {'ours/nova':>9} | passed"
    )
    print(head)
    print("-" * len(head))
    nova_dedicated = None
    for name, (vcpus, mem, extra) in FLAVORS.items():
        spec = nova.request_spec(vcpus, mem, extra)
        ours_t, nova_t, ours_n, nova_n = [], [], None, None
        for rep in range(args.reps + 1):  # the first warms up
            pair = [("ours", ours_f), ("nova", nova_f)]
            if rep % 2:
                pair.reverse()
            for who, filt in pair:
                ms, passed = per_request(filt, states, spec)
                if rep == 0:
                    continue
                if who == "ours":
                    ours_t.append(ms)
                    ours_n = passed
                else:
                    nova_t.append(ms)
                    nova_n = passed
        (o50, o95), (n50, n95) = fmt(ours_t), fmt(nova_t)
        if name == "dedicated 2x8":
            nova_dedicated = (n50, n95)
        print(
            f"{name:18} | {o50:8.1f} | {o95:8.1f} | {n50:8.1f} | "
            f"{n95:8.1f} | {o50 / n50:9.2f} | ours {ours_n}, nova {nova_n}"
        )
        sys.stdout.flush()
    slice_states, parents = slice_hosts(args.hosts, rng)
    chain = SliceChainFilter()
    chain._parents = parents  # as cached after the first request
    print()
    print(
        f"SliceChainFilter, {args.hosts} slice hosts, provider trees cached; "
        f"for scale: Nova's NUMATopologyFilter, dedicated 2x8, p50 "
        f"{nova_dedicated[0]:.1f} ms"
    )
    head = (
        f"{'slice flavor':18} | {'cands/host':>10} | {'p50 ms':>8} | "
        f"{'p95 ms':>8} | {'/ nova NUMA':>11} | candidates kept"
    )
    print(head)
    print("-" * len(head))
    context = object()
    for flavor, hosts in slice_states.items():
        spec = types.SimpleNamespace(
            flavor=types.SimpleNamespace(
                extra_specs={
                    "nova_slices:slice_class": f"CUSTOM_SLICE_{flavor}_V1"
                }
            ),
            _context=context,
        )
        times, kept = [], 0
        for rep in range(args.reps + 1):
            ms, _passed = per_request(chain, hosts, spec)
            if rep:
                times.append(ms)
        kept = sum(len(h.allocation_candidates) for h in hosts)
        total = sum(len(h.candidates_copy) for h in hosts)
        p50, p95 = fmt(times)
        print(
            f"{flavor:18} | {SLICE_CANDIDATES[flavor]:10} | {p50:8.2f} | "
            f"{p95:8.2f} | {p50 / nova_dedicated[0]:11.3f} | "
            f"{kept} of {total}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
