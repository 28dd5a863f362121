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
    #: why each device was taken where it was (DeviceLocality.explain);
    #: None when the claim had no locality to follow
    device_locality: dict | None = None


def _candidates(client, request, root_uuid):
    # keep every group on this host's tree (a remote Placement has many)
    params = request.query_params() + [
        (f"in_tree{suffix}", root_uuid) for suffix in request.suffixes
    ]
    resp = expect(
        client.get(path("allocation_candidates"), params=params), 200
    )
    return resp.body


def _choose(body, slice_of_provider, tree, locality=None):
    """Pick the candidate that keeps the most room for big slices.

    Prefer slices whose ancestors already have units in use (fill a
    partly used 4-GPU node before opening a fresh one), then devices
    near their slice (``locality``, a DeviceLocality: its policy may
    refuse a candidate outright), then the lowest slice name, so the
    choice is deterministic.  Returns (best or None, refused), refused
    being the (slice name, allocations) the policy turned down.
    """
    summaries = body["provider_summaries"]
    best = None
    refused = []
    for request in body["allocation_requests"]:
        slice_uuid = request["mappings"][SLICE_GROUP][0]
        name = slice_of_provider.get(slice_uuid)
        if name is None:
            continue
        near = 0
        if locality is not None:
            near = locality.score(name, _amounts(request))
            if near is None:
                refused.append((name, _amounts(request)))
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
        key = (-used, -near, _natural(name), -room, devices)
        if best is None or key < best[0]:
            best = (key, name, request)
    return best, refused


def _amounts(request):
    """{provider: {class: amount}} of one allocation request."""
    return {rp: a["resources"] for rp, a in request["allocations"].items()}


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
    locality=None,
):
    """Claim one slice of ``resource_class`` (and ``devices``, the
    guest's DeviceGroups) for ``consumer``, in one allocation; devices
    near the slice first, by ``locality`` (a DeviceLocality)."""
    request = slice_request(tree, resource_class).with_devices(devices)
    slice_of_provider = providers.slice_of_provider()
    explained = {}

    def attempt(lost):
        body = _candidates(client, request, providers.root.uuid)
        best, refused = _choose(body, slice_of_provider, tree, locality)
        if best is None and refused:
            raise locality.refusal(resource_class, refused)
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
        if locality is not None:
            explained[name] = locality.explain(
                name,
                _amounts(chosen),
                [
                    _amounts(r)
                    for r in body["allocation_requests"]
                    if r["mappings"][SLICE_GROUP][0]
                    == chosen["mappings"][SLICE_GROUP][0]
                ],
            )
        return _amounts(chosen), name

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
    return Claim(
        consumer, name, resource_class, allocations, explained.get(name)
    )


def release(client, consumer):
    """Delete a consumer's allocations (idempotent)."""
    expect(client.delete(path("allocations", consumer)), 204, 404)


def consumer_allocations(client, consumer):
    resp = expect(client.get(path("allocations", consumer)), 200)
    return {rp: a["resources"] for rp, a in resp.body["allocations"].items()}
