"""Allocation candidates for slice flavors at scale, against a plain flavor.

For N hosts (default 1, 100, 1000: the shipped 8-GPU tree, the odd half
partly used; see ``placement_hosts.py``) in the embedded Placement on
sqlite and on a private MariaDB, times the exact ``GET
/allocation_candidates`` Nova 34's scheduler sends for each slice flavor
and for a plain VCPU/MEMORY_MB/DISK_GB flavor: the query string comes
from Nova's own ``ResourceRequest.from_request_spec(...)
.to_querystring()`` (``limit`` = ``[scheduler] max_placement_results``,
microversion 1.36 as Nova's report client).  Flavors are timed
interleaved, so the ratio to the plain flavor is measured in the same run.

The plain flavor runs either on the same hosts (``same-hosts``: the
issue's goal; their roots also carry a compute node's VCPU and MEMORY_MB)
or on N one-provider compute nodes beside them (``plain-hosts``: a
reference that adds the cost of summarising a 12-provider tree); see
``placement_hosts.py``.  The goal's verdict is printed for
``same-hosts``.

Every candidate is checked: a slice candidate whose groups are not a chain
is counted as "dropped" (``SliceChainFilter`` removes it); a chain must
claim exactly one slice of the asked class, its whole chain and the
host's units (``encoding.slice_from_allocation``), on one host, and no
slice in conflict with one in use there; anything else is "invalid".

    python benchmarks/placement_scale.py [--hosts 1,100,1000] [--reps 7]
        [--db sqlite,mariadb] [--baseline same-hosts,plain-hosts]
        [--placement-option group.name=value ...]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(sys.path[0]))

import placement_hosts  # noqa: E402

from nova_slices import data  # noqa: E402
from nova_slices.cmd.runtime import load_conf  # noqa: E402
from nova_slices.errors import NovaSlicesError  # noqa: E402
from nova_slices.placement.client import PlacementClient, expect  # noqa: E402
from nova_slices.placement.embedded import EmbeddedPlacement  # noqa: E402
from nova_slices.placement.session import placement_adapter  # noqa: E402
from nova_slices.slices import encoding  # noqa: E402
from nova_slices.slices.tree import HOST_UNITS, load_tree  # noqa: E402

PLAIN = "plain"
#: diagnostic, not a flavor: one group (the root's) over the slice trees,
#: the floor under any slice request (which adds at least the slice group)
ROOT_ONLY = "floor:slice-root-only"
ROOT_ONLY_SPECS = {
    "resources:VCPU": "0",
    "resources:MEMORY_MB": "0",
    f"resources:{HOST_UNITS}": "1",
}
#: Nova's report client's microversion for GET /allocation_candidates
NOVA_MICROVERSION = "1.36"
#: a flavor's size; a slice flavor zeroes VCPU/MEMORY_MB, keeps its disk
VCPUS, MEMORY_MB, ROOT_GB = 2, 2048, 20
PLAIN_ASKS = {"VCPU": VCPUS, "MEMORY_MB": MEMORY_MB, "DISK_GB": ROOT_GB}
ROOT_ONLY_ASKS = {HOST_UNITS: 1, "DISK_GB": ROOT_GB}


def nova_queries(tree):
    """{flavor: Nova's query string}, built by Nova's own code."""
    warnings.simplefilter("ignore")
    from nova import objects
    from nova.scheduler import utils

    objects.register_all()

    def query(extra_specs):
        flavor = objects.Flavor(
            vcpus=VCPUS,
            memory_mb=MEMORY_MB,
            root_gb=ROOT_GB,
            ephemeral_gb=0,
            swap=0,
            extra_specs=extra_specs,
        )
        spec = objects.RequestSpec(
            flavor=flavor,
            image=objects.ImageMeta.from_dict({}),
            is_bfv=False,
        )
        return utils.ResourceRequest.from_request_spec(spec).to_querystring()

    out = {PLAIN: query({})}
    for rc in sorted(tree.classes, key=lambda rc: tree.classes[rc].leaves):
        specs = encoding.slice_request(tree, rc).nova_flavor_specs()
        out[rc] = query(specs)
    out[ROOT_ONLY] = query(ROOT_ONLY_SPECS)
    return out


def check(hosts, flavor, body):
    """(valid, dropped, invalid, hosts with a valid candidate)."""
    valid = dropped = invalid = 0
    seen = set()
    for candidate in body["allocation_requests"]:
        alloc = {
            rp: a["resources"] for rp, a in candidate["allocations"].items()
        }
        if flavor in (PLAIN, ROOT_ONLY):
            roots, asked = (
                (hosts.plain, PLAIN_ASKS)
                if flavor == PLAIN
                else (hosts.slice_roots, ROOT_ONLY_ASKS)
            )
            ok = (
                len(alloc) == 1
                and next(iter(alloc)) in roots
                and next(iter(alloc.values())) == asked
            )
            valid, invalid = valid + ok, invalid + (not ok)
            seen.update(alloc)
            continue
        if not encoding.is_chain(candidate["mappings"], hosts.parent_of):
            dropped += 1
            continue
        if _slice_ok(hosts, flavor, alloc, seen):
            valid += 1
        else:
            invalid += 1
    return valid, dropped, invalid, len(seen)


def _slice_ok(hosts, flavor, alloc, seen):
    on = {hosts.where.get(rp, (None,))[0] for rp in alloc}
    if len(on) != 1 or None in on:
        return False
    host = on.pop()
    slice_of = {rp: hosts.where[rp][1] for rp in alloc if hosts.where[rp][1]}
    root = next(rp for rp in alloc if hosts.where[rp][1] is None)
    tree = hosts.tree
    try:
        name = encoding.slice_from_allocation(tree, alloc, slice_of, root=root)
    except NovaSlicesError:
        return False
    in_use = hosts.in_use[host]
    if tree.slices[name].resource_class != flavor:
        return False
    if name in in_use or tree.conflicts(name) & in_use:
        return False
    seen.add(host)
    return True


def run(client, hosts, queries, reps):
    """Interleaved timings: {flavor: ([seconds], check result)}."""
    times = {f: [] for f in queries}
    checked = {}
    flavors = list(queries)
    for r in range(reps):
        order = flavors[r % len(flavors) :] + flavors[: r % len(flavors)]
        for flavor in order:
            url = "/allocation_candidates?" + queries[flavor]
            start, cpu = time.perf_counter(), time.process_time()
            body = expect(
                client.get(url, microversion=NOVA_MICROVERSION), 200
            ).body
            times[flavor].append(
                (time.perf_counter() - start, time.process_time() - cpu)
            )
            result = check(hosts, flavor, body)
            if checked.setdefault(flavor, result) != result:
                raise AssertionError(
                    f"{flavor}: {result} != {checked[flavor]}"
                )
    return {f: (times[f], checked[f]) for f in flavors}


def profiled(service, flavor_of_request):
    """Wrap the in-thread service's WSGI app in cProfile for the requests
    of one flavor; returns the profile (printed after the run)."""
    import cProfile

    prof = cProfile.Profile()
    app = service._server.get_app()

    def wrapped(environ, start_response):
        if not flavor_of_request(environ.get("QUERY_STRING", "")):
            return app(environ, start_response)
        prof.enable()
        try:
            return list(app(environ, start_response))
        finally:
            prof.disable()

    service._server.set_app(wrapped)
    return prof


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(db, baseline, n, results):
    """Print one row per flavor; return {flavor: (wall ratio, invalid)}."""
    plain = statistics.median(t for t, _ in results[PLAIN][0])
    plain_cpu = statistics.median(c for _, c in results[PLAIN][0])
    out = {}
    for flavor, (times, (valid, dropped, invalid, nhosts)) in results.items():
        wall = [t for t, _ in times]
        p50 = statistics.median(wall)
        cpu = statistics.median(c for _, c in times)
        print(
            f"{db:8} {baseline:11} {n:5d} {flavor:22} "
            f"{valid + dropped:6d} {valid:6d} "
            f"{dropped:6d} {invalid:4d} {nhosts:5d} {p50 * 1000:9.1f} "
            f"{p95(wall) * 1000:9.1f} {p50 / plain:6.2f}x "
            f"{cpu * 1000:9.1f} {cpu / plain_cpu:6.2f}x",
            flush=True,
        )
        out[flavor] = (p50 / plain, invalid)
    return out


#: the issue's goal is stated for this many hosts
GOAL_HOSTS = 1000


def verdict(db, baseline, n, ratios, goal=1.5):
    """The issue's goal, at the largest N: every slice flavor <= 1.5x a
    plain flavor on the same hosts, 0 invalid; for the reference
    baseline, only the figures."""
    flavors = [f for f in ratios if f != PLAIN and not f.startswith("floor")]
    worst = max(flavors, key=lambda f: ratios[f][0])
    invalid = sum(ratios[f][1] for f in ratios)
    met = ratios[worst][0] <= goal and invalid == 0
    if baseline == placement_hosts.SAME_HOSTS and n >= GOAL_HOSTS:
        outcome = f"goal (<= {goal}x, 0 invalid) {'MET' if met else 'NOT MET'}"
    elif baseline == placement_hosts.SAME_HOSTS:
        outcome = f"(the goal is set at {GOAL_HOSTS} hosts)"
    else:
        outcome = "reference (plain flavor on one-provider hosts)"
    print(
        f"# {db} {baseline} {n} hosts: worst {worst} "
        f"{ratios[worst][0]:.2f}x plain, {invalid} invalid: {outcome}",
        flush=True,
    )


def databases(names, stack):
    """{name: factory(label) -> SQLAlchemy URL of an empty database}."""
    out = {}
    if "sqlite" in names:
        out["sqlite"] = lambda label: None
    if "mariadb" in names:
        from tests.fixtures import mariadb

        server = stack.enter_context(mariadb.MariaDB())
        out["mariadb"] = server.create_database
    return out


def _print_profile(prof):
    import pstats

    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats("allocation_candidate", 12)


def parse_options(pairs):
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        group, _, name = key.rpartition(".")
        options.setdefault(group or "placement", {})[name] = value
    return options


def main():
    import contextlib

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", default="1,100,1000")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--db", default="sqlite,mariadb")
    parser.add_argument(
        "--baseline",
        default=",".join(placement_hosts.BASELINES),
        help="where the plain flavor runs: same-hosts (the goal) and/or "
        "plain-hosts (reference)",
    )
    parser.add_argument(
        "--profile",
        metavar="FLAVOR",
        help="print where Placement spends its time on this flavor's "
        "requests (cProfile, top functions by own time), at each N; "
        "cProfile slows that flavor, so its ratio is not comparable",
    )
    parser.add_argument(
        "--placement-option",
        action="append",
        default=[],
        help="e.g. placement.max_allocation_candidates=1000",
    )
    args = parser.parse_args()
    sizes = args.sizes = [int(n) for n in args.hosts.split(",")]
    options = args.options = parse_options(args.placement_option)
    with tempfile.TemporaryDirectory() as state:
        conf = load_conf(
            [f"{data.host_bundle()}/nova-slices.conf"],
            overrides={(None, "state_path"): state},
        )
        tree = load_tree(conf)
        queries = nova_queries(tree)
        for flavor, qs in queries.items():
            print(f"# {flavor}: GET /allocation_candidates?{qs}")
        if options:
            print(f"# Placement options: {options}")
        print(
            f"{'db':8} {'baseline':11} {'hosts':>5} {'flavor':22} "
            f"{'cands':>6} {'chain':>6} "
            f"{'drop':>6} {'inv':>4} {'hosts':>5} {'p50 ms':>9} "
            f"{'p95 ms':>9} {'/plain':>7} {'cpu ms':>9} {'/plain':>7}"
        )
        with contextlib.ExitStack() as stack:
            for db, new_db in databases(args.db.split(","), stack).items():
                for baseline in args.baseline.split(","):
                    for n in sizes:
                        path = os.path.join(state, f"{db}-{baseline}-{n}")
                        os.makedirs(path)
                        url = new_db(f"scale{n}{baseline[0]}")
                        measure(
                            args, queries, tree, path, url, db, baseline, n
                        )


def measure(args, queries, tree, path, url, db, baseline, n):
    """Build one database of n hosts for one baseline and time it."""
    with EmbeddedPlacement(
        path, database_url=url, options=args.options
    ) as service:
        client = PlacementClient(
            placement_adapter(service.endpoint), service.endpoint
        )
        started = time.perf_counter()
        hosts = placement_hosts.build(
            client, service.database_url, tree, n, baseline
        )
        setup = time.perf_counter() - started
        print(f"# {db} {baseline} {n} hosts built in {setup:.1f} s")
        if args.profile:
            prof = profiled(service, lambda q: q == queries[args.profile])
        ratios = report(
            db, baseline, n, run(client, hosts, queries, args.reps)
        )
        if n == max(args.sizes):
            verdict(db, baseline, n, ratios)
        if args.profile:
            _print_profile(prof)


if __name__ == "__main__":
    main()
