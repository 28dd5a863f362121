"""Claim and release one slice in Placement, atomically.

A claim asks for allocation candidates with the unit-chain request, picks
one, and PUTs it as the instance's allocations with consumer generation
``None`` (a new consumer).  Another claimer may win the race between the
two calls: Placement then answers 409 and we retry with fresh candidates,
a bounded number of times, with jittered back-off so racers spread out.
"""

import dataclasses
import logging
import random
import time

from nova_slices.errors import NoCandidates, PlacementError
from nova_slices.placement.client import expect
from nova_slices.placement.urls import path
from nova_slices.slices.encoding import SLICE_GROUP, slice_request

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Claim:
    consumer: str
    slice_name: str
    resource_class: str
    #: provider uuid -> {resource class: amount}
    allocations: dict


def _candidates(client, request, root_uuid):
    # keep every group on this host's tree (a remote Placement has many)
    params = request.query_params() + [
        (f"in_tree{suffix}", root_uuid) for suffix in request.suffixes
    ]
    resp = expect(
        client.get(path("allocation_candidates"), params=params), 200
    )
    return resp.body


def _choose(body, slice_of_provider, tree):
    """Pick the candidate that keeps the most room for big slices.

    Prefer slices whose ancestors already have units in use (fill a
    partly used 4-GPU node before opening a fresh one), then the lowest
    slice name, so the choice is deterministic.
    """
    summaries = body["provider_summaries"]
    best = None
    for request in body["allocation_requests"]:
        slice_uuid = request["mappings"][SLICE_GROUP][0]
        name = slice_of_provider.get(slice_uuid)
        if name is None:
            continue
        used = 0
        for rp, summary in summaries.items():
            if (
                rp == slice_uuid
                or rp not in request["allocations"]
                or rp not in slice_of_provider
            ):
                continue
            used += sum(r["used"] for r in summary["resources"].values())
        # among equal slices, the device providers with the most room left
        # (spread devices), then by uuid so the choice is deterministic
        devices = sorted(
            rp for rp in request["allocations"] if rp not in slice_of_provider
        )
        room = sum(_free(summaries.get(rp)) for rp in devices)
        key = (-used, _natural(name), -room, devices)
        if best is None or key < best[0]:
            best = (key, name, request)
    return best


def _free(summary):
    if summary is None:
        return 0
    return sum(
        r["capacity"] - r["used"] for r in summary["resources"].values()
    )


def _natural(name):
    parts = name.replace("_", " ").replace("-", " ").split()
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]


def put_allocations(
    client,
    consumer,
    project_id,
    user_id,
    attempt,
    what,
    retries=5,
    rng=random,
    sleep=time.sleep,
):
    """PUT what ``attempt(lost)`` proposes as a new consumer's allocation.

    ``attempt`` reads fresh candidates and returns ``(allocations,
    label)`` ({provider: {class: amount}}), or raises NoCandidates; a 409
    (a concurrent claim won, or took the capacity) is retried with
    jittered back-off, ``lost`` counting the races lost so far.
    """
    lost = 0
    for n in range(retries):
        allocations, label = attempt(lost)
        resp = client.put(
            path("allocations", consumer),
            {
                "allocations": {
                    rp: {"resources": dict(resources)}
                    for rp, resources in allocations.items()
                },
                "project_id": project_id,
                "user_id": user_id,
                "consumer_generation": None,
            },
        )
        if resp.status == 204:
            return allocations, label
        if resp.status != 409:
            expect(resp, 204)
        lost += 1
        LOG.info(
            "claim of %s for %s lost a race (%s); retrying",
            label,
            consumer,
            resp.error_code,
        )
        sleep(rng.uniform(0.01, 0.05) * (2**n))
    raise PlacementError(
        f"could not claim {what} for {consumer}: {retries} attempts all "
        "lost to concurrent claims",
        code="placement.claim-conflict",
        value=what,
    )


def claim_slice(
    client,
    tree,
    providers,
    resource_class,
    consumer,
    project_id,
    user_id,
    retries=5,
    rng=random,
    sleep=time.sleep,
    devices=(),
):
    """Claim one slice of ``resource_class`` (and ``devices``, the
    guest's DeviceGroups) for ``consumer``, in one allocation."""
    request = slice_request(tree, resource_class).with_devices(devices)
    slice_of_provider = providers.slice_of_provider()

    def attempt(lost):
        body = _candidates(client, request, providers.root.uuid)
        best = _choose(body, slice_of_provider, tree)
        if best is None:
            if lost:
                raise NoCandidates(
                    f"no {resource_class} slice is free any more: the "
                    f"candidate(s) seen were taken by concurrent claims "
                    f"({lost} lost race(s))",
                    code="slice.lost-race",
                    value=resource_class,
                )
            wanted = "".join(
                f" with {dict(d.resources)}"
                + (f" ({', '.join(d.required)})" if d.required else "")
                for d in devices
            )
            raise NoCandidates(
                f"no {resource_class} slice{wanted} is free",
                code="slice.no-candidates",
                value=resource_class,
            )
        _, name, chosen = best
        return {
            rp: a["resources"] for rp, a in chosen["allocations"].items()
        }, name

    allocations, name = put_allocations(
        client,
        consumer,
        project_id,
        user_id,
        attempt,
        f"a {resource_class} slice",
        retries,
        rng,
        sleep,
    )
    return Claim(consumer, name, resource_class, allocations)


def release(client, consumer):
    """Delete a consumer's allocations (idempotent)."""
    expect(client.delete(path("allocations", consumer)), 204, 404)


def consumer_allocations(client, consumer):
    resp = expect(client.get(path("allocations", consumer)), 200)
    return {rp: a["resources"] for rp, a in resp.body["allocations"].items()}
