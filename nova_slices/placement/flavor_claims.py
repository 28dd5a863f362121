"""Claim a dynamic guest's flavor in Placement, in one allocation.

The candidates come from Placement (it checks capacity, traits and
group policy); the fitter has already chosen the guest's PCI devices by
NUMA affinity, so those are added to the candidate we pick, on their
own providers.  Among candidates we prefer device providers near the
guest's host cells (a vGPU on the guest's socket), then the most room
left, then provider uuids: deterministic.
"""

import random
import time

from nova_slices.errors import NoCandidates
from nova_slices.placement.claims import put_allocations
from nova_slices.placement.client import expect
from nova_slices.placement.urls import path


def merge(*allocations):
    """{provider: {class: amount}} summed over several allocations."""
    out = {}
    for alloc in allocations:
        for rp, resources in alloc.items():
            mine = out.setdefault(rp, {})
            for rc, n in resources.items():
                mine[rc] = mine.get(rc, 0) + n
    return out


def _fits(summaries, allocations):
    for rp, resources in allocations.items():
        summary = summaries.get(rp)
        if summary is None:
            return False
        for rc, n in resources.items():
            r = summary["resources"].get(rc)
            if r is None or r["capacity"] - r["used"] < n:
                return False
    return True


def choose(body, extra=None, nearness=None):
    """The best allocation request with ``extra`` added, or None."""
    extra = extra or {}
    nearness = nearness or {}
    summaries = body["provider_summaries"]
    best = None
    for request in body["allocation_requests"]:
        alloc = merge(
            {rp: a["resources"] for rp, a in request["allocations"].items()},
            extra,
        )
        if not _fits(summaries, alloc):
            continue
        rps = sorted(alloc)
        near = sum(nearness.get(rp, 0) for rp in rps)
        room = sum(
            r["capacity"] - r["used"]
            for rp in rps
            for r in summaries[rp]["resources"].values()
        )
        key = (-near, -room, rps)
        if best is None or key < best[0]:
            best = (key, alloc)
    return None if best is None else best[1]


def claim_flavor(
    client,
    request,
    root_uuid,
    consumer,
    project_id,
    user_id,
    extra=None,
    nearness=None,
    retries=5,
    rng=random,
    sleep=time.sleep,
):
    """Allocations claimed for ``request`` (a FlavorRequest) + ``extra``."""
    params = request.query_params(root_uuid)

    def attempt(lost):
        body = expect(
            client.get(path("allocation_candidates"), params=params), 200
        ).body
        alloc = choose(body, extra, nearness)
        if alloc is None:
            if lost:
                raise NoCandidates(
                    "Placement has no room for the guest any more: "
                    f"concurrent claims took it ({lost} lost race(s))",
                    code="placement.lost-race",
                )
            raise NoCandidates(
                "Placement has no allocation candidate on this host for "
                + ", ".join(
                    f"resources{g.suffix}="
                    + ",".join(f"{rc}:{n}" for rc, n in g.resources)
                    for g in request.groups
                ),
                code="placement.no-candidates",
            )
        return alloc, "the guest's flavor"

    allocations, _ = put_allocations(
        client,
        consumer,
        project_id,
        user_id,
        attempt,
        "the guest's flavor",
        retries,
        rng,
        sleep,
    )
    return allocations
