"""Model checking the slice claims against the real Placement service.

The oracle is the plain rule: a slice is usable iff neither it nor any
ancestor or descendant is in use.  We check (1) every reachable state of
the shipped tree: Placement offers exactly the oracle's usable slices of
each class; (2) every sequence of spawns and destroys of 1-, 4- and 8-GPU
guests up to a bounded depth: each claim succeeds iff the oracle has a
usable slice, and the slice it takes is one the oracle allows.
"""

import itertools
import time

from nova_slices.errors import NoCandidates
from nova_slices.placement import claims
from nova_slices.placement.client import expect
from nova_slices.slices import encoding
from nova_slices.slices.tree import HOST_UNITS

CLASSES = (
    "CUSTOM_SLICE_1_GPU_V1",
    "CUSTOM_SLICE_4_GPU_V1",
    "CUSTOM_SLICE_8_GPU_V1",
)
PROJECT, USER = "p" * 32, "u" * 32


def usable(tree, in_use, name):
    return name not in in_use and not (tree.conflicts(name) & in_use)


def _offered(client, tree, providers, rc):
    request = encoding.slice_request(tree, rc)
    params = request.query_params() + [
        (f"in_tree{s}", providers.root.uuid) for s in request.groups
    ]
    body = expect(
        client.get("/allocation_candidates", params=params), 200
    ).body
    slice_of = providers.slice_of_provider()
    offered = []
    for candidate in body["allocation_requests"]:
        alloc = {
            rp: a["resources"] for rp, a in candidate["allocations"].items()
        }
        # every candidate is a whole chain, never a broken one
        offered.append(encoding.slice_from_allocation(tree, alloc, slice_of))
    return offered


def _take(client, tree, providers, name, consumer):
    uuid_of = providers.provider_of_slice()
    allocations = {
        uuid_of[n]: {"resources": res}
        for n, res in encoding.slice_allocation(tree, name).items()
    }
    # what a claim takes from the compute node too: its leaves
    allocations[providers.root.uuid] = {
        "resources": {HOST_UNITS: tree.slices[name].leaves}
    }
    resp = client.put(
        f"/allocations/{consumer}",
        {
            "allocations": allocations,
            "project_id": PROJECT,
            "user_id": USER,
            "consumer_generation": None,
        },
    )
    return resp.status


def _consumer(i):
    return f"00000000-0000-4000-8000-{i:012d}"


def test_every_state_offers_exactly_the_usable_slices(slice_host, placement):
    tree, providers = slice_host
    seen = set()
    counter = itertools.count()

    def visit(in_use, consumers):
        seen.add(in_use)
        for rc in CLASSES:
            offered = _offered(placement, tree, providers, rc)
            expected = sorted(
                n for n in tree.classes[rc].slices if usable(tree, in_use, n)
            )
            assert sorted(offered) == expected, (sorted(in_use), rc)
            assert len(offered) == len(set(offered))  # one per free slice
        for name in tree.slices:
            nxt = in_use | {name}
            if not usable(tree, in_use, name):
                # Placement refuses a conflicting slice outright
                if name not in in_use:
                    assert (
                        _take(
                            placement, tree, providers, name, _consumer(10**6)
                        )
                        == 409
                    )
                continue
            if nxt in seen:
                continue
            consumer = _consumer(next(counter))
            assert _take(placement, tree, providers, name, consumer) == 204
            visit(nxt, consumers + [consumer])
            claims.release(placement, consumer)

    visit(frozenset(), [])
    assert len(seen) == 290


def test_spawn_destroy_sequences_agree_with_the_oracle(slice_host, placement):
    """Every sequence of actions up to DEPTH, explored with undo."""
    tree, providers = slice_host
    depth = 5
    deadline = time.monotonic() + 100
    counter = itertools.count(1)
    sequences = 0

    def step(in_use, guests, remaining):
        nonlocal sequences
        if remaining == 0:
            sequences += 1
            return
        if time.monotonic() > deadline:
            return  # a loaded machine explores fewer sequences, not wrong
        for rc in CLASSES:
            free = [
                n for n in tree.classes[rc].slices if usable(tree, in_use, n)
            ]
            consumer = _consumer(next(counter))
            try:
                claim = claims.claim_slice(
                    placement,
                    tree,
                    providers,
                    rc,
                    consumer,
                    PROJECT,
                    USER,
                    sleep=lambda s: None,
                )
            except NoCandidates:
                assert free == [], (sorted(in_use), rc)
                step(in_use, guests, remaining - 1)
                continue
            assert claim.slice_name in free, (sorted(in_use), rc)
            step(
                in_use | {claim.slice_name},
                guests + [(consumer, claim.slice_name)],
                remaining - 1,
            )
            claims.release(placement, consumer)
        for i, (consumer, name) in enumerate(guests):
            claims.release(placement, consumer)
            step(in_use - {name}, guests[:i] + guests[i + 1 :], remaining - 1)
            assert _take(placement, tree, providers, name, consumer) == 204

    step(frozenset(), [], depth)
    assert sequences > 100
