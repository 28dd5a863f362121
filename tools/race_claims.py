"""Race slice claims against the real Placement on MariaDB; count over-commits.

Not a test and never run in CI: it prints figures.  DESIGN 3.2 measured
Placement on MariaDB over-committing racing claims with its default
``allocation_conflict_retry_count = 10`` and not with 1; this re-measures
that through this project's own claim client
(:func:`nova_slices.placement.claims.claim_slice`, with its 409 retries and
jittered back-off), on the shipped 8-GPU slice tree.

Setup (once): a private MariaDB (``tests/fixtures/mariadb.py``, as
``tests/functional/test_concurrency.py`` starts it), the real Placement
service over it in a multi-threaded subprocess, the slice tree reported.
Then each round, on an empty host, starts its racers together (threads
released by a barrier, each with its own keystoneauth session) in one of
three scenarios, in turn:

``same-leaf``  2 x 1-GPU: both pick the same free leaf; both must win,
               on different leaves, the loser of the race after a 409.
``one-slice``  2 x 8-GPU: one slice for two; exactly one may win.
``mixed-11``   8 x 1-GPU, 2 x 4-GPU, 1 x 8-GPU: 11-way, 8 GPUs.

After each round it reads Placement itself and counts an over-commit when
a provider's usage exceeds its capacity or two slices that overlap are both
in use, and a discrepancy when a winner holds no allocation or a loser
holds one; then it deletes every allocation.

    python tools/race_claims.py [--rounds 1000] [--retry-count 1]
"""

import argparse
import collections
import os
import random
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from nova_slices import data  # noqa: E402
from nova_slices.cmd.runtime import load_conf  # noqa: E402
from nova_slices.errors import NovaSlicesError  # noqa: E402
from nova_slices.placement import claims  # noqa: E402
from nova_slices.placement.client import PlacementClient, expect  # noqa: E402
from nova_slices.placement.embedded import EmbeddedPlacement  # noqa: E402
from nova_slices.placement.session import placement_adapter  # noqa: E402
from nova_slices.placement.sync import ProviderTreeSync  # noqa: E402
from nova_slices.placement.urls import path  # noqa: E402
from nova_slices.provider_tree import build_provider_tree  # noqa: E402
from nova_slices.slices.tree import load_tree  # noqa: E402
from tests.fixtures import mariadb as mariadb_fixture  # noqa: E402

ONE, FOUR, EIGHT = (
    "CUSTOM_SLICE_1_GPU_V1",
    "CUSTOM_SLICE_4_GPU_V1",
    "CUSTOM_SLICE_8_GPU_V1",
)
SCENARIOS = (
    ("same-leaf", (ONE, ONE)),
    ("one-slice", (EIGHT, EIGHT)),
    ("mixed-11", (ONE,) * 8 + (FOUR,) * 2 + (EIGHT,)),
)
PROJECT, USER = "p" * 32, "u" * 32


class CountingClient(PlacementClient):
    """The real client, counting the 409s our claims are answered."""

    def __init__(self, adapter, endpoint):
        super().__init__(adapter, endpoint)
        self.conflicts = 0

    def request(self, method, url, **kw):
        resp = super().request(method, url, **kw)
        if resp.status == 409:
            self.conflicts += 1
        return resp


def new_client(endpoint):
    return CountingClient(placement_adapter(endpoint), endpoint)


def race(clients, tree, providers, classes, rng):
    """Start one claim per class at once; [(consumer, Claim or code)]."""
    barrier = threading.Barrier(len(classes))
    results = [None] * len(classes)
    consumers = [
        "%08x-0000-4000-8000-%012x" % (rng.getrandbits(32), i)
        for i in range(len(classes))
    ]

    def claim(i):
        barrier.wait()
        try:
            results[i] = claims.claim_slice(
                clients[i],
                tree,
                providers,
                classes[i],
                consumers[i],
                PROJECT,
                USER,
            )
        except NovaSlicesError as exc:
            results[i] = exc.code

    threads = [
        threading.Thread(target=claim, args=(i,)) for i in range(len(classes))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return list(zip(consumers, results, strict=True))


def audit(client, tree, providers, capacity, outcome):
    """What Placement holds after a round: (over-commits, discrepancies),
    each a list of one-line descriptions; every allocation is deleted."""
    over, wrong = [], []
    slice_of = providers.slice_of_provider()
    in_use = []
    for uuid, limits in capacity.items():
        usages = expect(
            client.get(path("resource_providers", uuid, "usages")), 200
        ).body["usages"]
        for rc, used in usages.items():
            if used > limits.get(rc, 0):
                over.append(f"{uuid} {rc}: {used} > {limits.get(rc, 0)}")
        name = slice_of.get(uuid)
        if name and usages.get(tree.slices[name].resource_class):
            in_use.append(name)
    for i, a in enumerate(in_use):
        for b in in_use[i + 1 :]:
            if b in tree.conflicts(a):
                over.append(f"slices {a} and {b} overlap, both in use")
    for consumer, result in outcome:
        # a winner must hold exactly what it claimed, a loser nothing:
        # its DELETE (which also clears the host for the next round)
        # must find no allocation
        if not isinstance(result, str):
            held = claims.consumer_allocations(client, consumer)
            if held != result.allocations:
                wrong.append(f"winner {consumer} holds {held}")
        resp = client.delete(path("allocations", consumer))
        expect(resp, 204, 404)
        if isinstance(result, str) and resp.status != 404:
            wrong.append(f"loser {consumer} ({result}) held an allocation")
    return over, wrong


def capacities(client, providers):
    """{provider: {class: (total - reserved) x allocation_ratio}}."""
    out = {}
    for p in providers.providers:
        inv = expect(
            client.get(path("resource_providers", p.uuid, "inventories")), 200
        ).body["inventories"]
        out[p.uuid] = {
            rc: int((i["total"] - i["reserved"]) * i["allocation_ratio"])
            for rc, i in inv.items()
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument(
        "--retry-count",
        type=int,
        default=1,
        help="Placement's [placement] allocation_conflict_retry_count "
        "(1, as the README prescribes; 10 is Placement's default)",
    )
    parser.add_argument(
        "--threads", type=int, default=16, help="Placement's request threads"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    reason = mariadb_fixture.unavailable_reason()
    if reason:
        sys.exit(f"race_claims needs MariaDB: {reason}")
    with tempfile.TemporaryDirectory(prefix="race-claims-") as work:
        run(args, rng, work)


def run(args, rng, work):
    conf = load_conf(
        [os.path.join(data.host_bundle(), "nova-slices.conf")],
        overrides={(None, "state_path"): work},
    )
    tree = load_tree(conf)
    providers = build_provider_tree("gpu8-2s", tree)

    started = time.monotonic()
    with (
        mariadb_fixture.MariaDB() as db,
        EmbeddedPlacement(
            os.path.join(work, "placement"),
            database_url=db.url,
            mode="subprocess",
            threads=args.threads,
            conflict_retry_count=args.retry_count,
        ) as service,
    ):
        setup = time.monotonic() - started
        admin = new_client(service.endpoint)
        ProviderTreeSync(admin).sync(providers)
        capacity = capacities(admin, providers)
        most = max(len(classes) for _, classes in SCENARIOS)
        clients = [new_client(service.endpoint) for _ in range(most)]

        figures = collections.Counter()
        per_scenario = collections.defaultdict(collections.Counter)
        examples = []
        t0 = time.monotonic()
        for n in range(args.rounds):
            name, classes = SCENARIOS[n % len(SCENARIOS)]
            before = sum(c.conflicts for c in clients)
            r0 = time.monotonic()
            outcome = race(clients, tree, providers, classes, rng)
            r1 = time.monotonic()
            over, wrong = audit(admin, tree, providers, capacity, outcome)
            s = per_scenario[name]
            s["race ms"] += round((r1 - r0) * 1000)
            s["audit ms"] += round((time.monotonic() - r1) * 1000)
            s["rounds"] += 1
            s["claims"] += len(classes)
            s["wins"] += sum(not isinstance(r, str) for _, r in outcome)
            s["409 retries"] += sum(c.conflicts for c in clients) - before
            for _, r in outcome:
                if isinstance(r, str):
                    s[f"refused {r}"] += 1
            s["over-commit rounds"] += bool(over)
            s["over-commits"] += len(over)
            s["discrepancies"] += len(wrong)
            examples += [f"round {n} ({name}): {x}" for x in over + wrong]
            if (n + 1) % 100 == 0:
                print(
                    f"... {n + 1} rounds, {time.monotonic() - t0:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        wall = time.monotonic() - t0
        for s in per_scenario.values():
            figures.update(s)

    print(
        f"Placement on MariaDB, allocation_conflict_retry_count = "
        f"{args.retry_count}, {args.threads} server threads; claims through "
        f"nova_slices.placement.claims (retries "
        f"{conf.placement.claim_retries}, jittered back-off)"
    )
    order = ["rounds", "claims", "wins", "409 retries"]
    order += sorted(k for k in figures if k.startswith("refused "))
    order += ["over-commit rounds", "over-commits", "discrepancies"]
    order += ["race ms", "audit ms"]
    width = max(len(k) for k in order)
    print(
        f"{'':{width}}  "
        + "  ".join(f"{n:>10}" for n in [*per_scenario, "total"])
    )
    for key in order:
        cells = [per_scenario[n][key] for n in per_scenario]
        print(
            f"{key:{width}}  "
            + "  ".join(f"{c:>10}" for c in [*cells, figures[key]])
        )
    print(
        f"wall time: {wall:.1f} s for {args.rounds} rounds "
        f"({figures['claims'] / wall:.1f} claims/s); MariaDB and Placement "
        f"start-up {setup:.1f} s"
    )
    for line in examples[:10]:
        print("  " + line)
    if len(examples) > 10:
        print(f"  ... and {len(examples) - 10} more")


if __name__ == "__main__":
    main()
