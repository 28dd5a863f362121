"""Reporting and claiming cost against the real (embedded) Placement.

Prints, for the shipped 8-GPU host: calls and time of the first sync, of
an unchanged sync with the local copy (the periodic case), and of the
baseline that re-reads everything from Placement (what a sync without a
local copy costs, DESIGN.md 3.2), with the ratio measured in this run;
then the median latency of a slice claim + release per class.

    python benchmarks/bench_sync.py [--rounds N]
"""

import argparse
import statistics
import tempfile
import time

from nova_slices import data
from nova_slices.cmd.runtime import load_conf
from nova_slices.placement import claims
from nova_slices.placement.connect import open_placement
from nova_slices.placement.sync import ProviderTreeSync
from nova_slices.provider_tree import build_provider_tree
from nova_slices.slices.tree import load_tree


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def calls(client):
    return sum(client.calls.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    bundle_conf = f"{data.host_bundle()}/nova-slices.conf"
    with tempfile.TemporaryDirectory() as state:
        conf = load_conf(
            [bundle_conf], overrides={(None, "state_path"): state}
        )
        tree = load_tree(conf)
        providers = build_provider_tree("gpu8-2s", tree)
        client, service = open_placement(conf)
        try:
            sync = ProviderTreeSync(client)
            before = calls(client)
            _, first = timed(lambda: sync.sync(providers))
            first_calls = calls(client) - before

            cached, base = [], []
            for _ in range(args.rounds):
                before = calls(client)
                _, t = timed(lambda: sync.sync(providers))
                cached.append((t, calls(client) - before))
                before = calls(client)
                _, t = timed(lambda: ProviderTreeSync(client).sync(providers))
                base.append((t, calls(client) - before))
            c_t = statistics.median(t for t, _ in cached)
            b_t = statistics.median(t for t, _ in base)
            print(
                f"first sync:           {first_calls:3d} calls "
                f"{first * 1000:8.1f} ms"
            )
            print(
                f"unchanged, cached:    {cached[0][1]:3d} calls "
                f"{c_t * 1000:8.3f} ms (median of {args.rounds})"
            )
            print(
                f"unchanged, re-read:   {base[0][1]:3d} calls "
                f"{b_t * 1000:8.1f} ms (baseline)"
            )
            print(f"ratio baseline/cached: {b_t / c_t:,.0f}x")

            for rc in tree.classes:
                times = []
                for i in range(args.rounds):
                    consumer = f"00000000-0000-4000-8000-{i:012d}"
                    claim, t = timed(
                        lambda rc=rc, c=consumer: claims.claim_slice(
                            client, tree, providers, rc, c, "p" * 32, "u" * 32
                        )
                    )
                    times.append(t)
                    claims.release(client, consumer)
                median_ms = statistics.median(times) * 1000
                print(f"claim {rc:<24} median {median_ms:6.1f} ms")
        finally:
            service.stop()


if __name__ == "__main__":
    main()
