"""Carrying out the reconciler's repairs, and releasing one consumer.

:func:`nova_slices.compute.reconcile.plan_repairs` decides; this module
reads what it decides from (Placement's allocations, libvirt's domains,
the journal of spawns and destroys in progress) and acts.  The command
line runs :func:`repair` when it opens for a command that changes state
(``spawn``, ``destroy``, ``release``) and in ``sync``, so a process
killed half-way is cleaned up by the next one.  The Nova driver does
not: there the scheduler writes allocations before nova-compute spawns,
and Nova's own resource tracker owns that bookkeeping.

The domains and the journal are read under the host lock, which every
define and undefine takes: no guest appears or disappears while the
decision is made, so an allocation seen without its guest really has
none.
"""

import dataclasses
import logging
import time

from nova_slices.compute.guests import CLI_OWNER
from nova_slices.compute.journal import canonical
from nova_slices.compute.reconcile import plan_repairs
from nova_slices.errors import (
    GuestError,
    PlacementError,
    RequestError,
)
from nova_slices.placement import claims, urls
from nova_slices.placement.client import expect

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RepairReport:
    """What one reconcile did; each tuple holds dicts for JSON."""

    released: tuple = ()
    kept: tuple = ()
    reclaimed: tuple = ()
    #: guests whose allocation could not be claimed again, and why
    not_reclaimed: tuple = ()

    def to_dict(self):
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}


def repair(driver, now=None):
    """Release what dead spawns and destroys left, claim again what
    guests lost; returns a RepairReport (everything done is logged)."""
    grace = driver.conf.orphan_allocation_grace_seconds
    names = {p.uuid: p.name for p in driver.providers.providers}
    allocations = driver.allocations_by_consumer()
    with driver.host.lock():
        now = time.time() if now is None else now
        rows = driver.guest_states()
        records = {r.instance_uuid: r for _, r, _ in rows if r is not None}
        # a guest defined since the read above has its allocation too
        for consumer in records:
            if consumer not in allocations:
                here = _here(driver, consumer)
                if here:
                    allocations[consumer] = here
        plan = plan_repairs(
            [state for _, _, state in rows],
            allocations,
            driver.journal.entries(),
            driver.journal.load_seen(),
            now,
            grace,
            tuple(driver.host.unreadable.values()),
        )
        released = []
        for consumer, why in plan.release:
            held = release_here(driver, consumer)
            LOG.warning(
                "released the allocation of consumer %s (%s): %s",
                consumer,
                _describe(held, names),
                why,
            )
            released.append(
                {
                    "consumer": consumer,
                    "allocations": _named(held, names),
                    "reason": why,
                }
            )
        reclaimed, failed = [], []
        for state in plan.reclaim:
            record = records[state.instance_uuid]
            wanted = driver.full_allocation(record)
            problem = _claim_again(driver, record, wanted)
            row = {
                "consumer": state.instance_uuid,
                "name": state.name,
                "allocations": _named(wanted, names),
            }
            if problem is None:
                LOG.warning(
                    "guest %s (%s) held no allocation: claimed %s again",
                    state.name,
                    state.instance_uuid,
                    _describe(wanted, names),
                )
                reclaimed.append(row)
            else:
                LOG.warning(
                    "guest %s (%s) holds no allocation and %s cannot be "
                    "claimed again: %s",
                    state.name,
                    state.instance_uuid,
                    _describe(wanted, names),
                    problem,
                )
                failed.append({**row, "reason": problem})
        for consumer in plan.forget:
            driver.journal.forget(consumer)
        driver.journal.remove_stale_temporaries()
        driver.journal.save_seen(plan.seen)
    for consumer, why in plan.keep:
        LOG.log(
            logging.INFO if consumer in plan.busy else logging.WARNING,
            "consumer %s holds %s on this host without a guest; kept: %s",
            consumer,
            _describe(allocations[consumer], names),
            why,
        )
    return RepairReport(
        tuple(released),
        tuple({"consumer": c, "reason": why} for c, why in plan.keep),
        tuple(reclaimed),
        tuple(failed),
    )


def _named(allocation, names):
    return {names.get(rp, rp): dict(res) for rp, res in allocation.items()}


def _describe(allocation, names):
    return (
        ", ".join(
            sorted(
                f"{names.get(rp, rp)}: {dict(sorted(res.items()))}"
                for rp, res in allocation.items()
            )
        )
        or "nothing"
    )


def _here(driver, consumer):
    """The consumer's allocation on this host's providers ({} if none)."""
    mine = {p.uuid for p in driver.providers.providers}
    return {
        rp: res
        for rp, res in claims.consumer_allocations(
            driver.client, consumer
        ).items()
        if rp in mine
    }


def release_here(driver, consumer):
    """Delete the consumer's allocation on this host's providers and
    return what it held there; its allocations on other hosts' providers
    (a migration's) are kept.  Retried on a concurrent change."""
    mine = {p.uuid for p in driver.providers.providers}
    for _ in range(driver.conf.placement.claim_retries):
        resp = expect(
            driver.client.get(urls.path("allocations", consumer)), 200
        ).body
        held = {rp: a["resources"] for rp, a in resp["allocations"].items()}
        here = {rp: res for rp, res in held.items() if rp in mine}
        if not here:
            return {}
        rest = {rp: res for rp, res in held.items() if rp not in mine}
        if not rest:
            claims.release(driver.client, consumer)
            return here
        put = driver.client.put(
            urls.path("allocations", consumer),
            {
                "allocations": {
                    rp: {"resources": res} for rp, res in rest.items()
                },
                "project_id": resp["project_id"],
                "user_id": resp["user_id"],
                "consumer_generation": resp["consumer_generation"],
            },
        )
        if put.status == 204:
            return here
        if put.status != 409:
            expect(put, 204)
    raise PlacementError(
        f"could not release consumer {consumer} on this host: its "
        "allocations kept changing under concurrent writes",
        code="placement.release-conflict",
        key="consumer",
        value=consumer,
    )


def _claim_again(driver, record, wanted):
    """None when ``wanted`` is the guest's allocation again, else why not."""
    if not wanted:
        return "nothing is known to claim for it"
    # the record does not keep who owned the claim: the command line's
    # guests all belong to CLI_OWNER
    owner = CLI_OWNER
    resp = driver.client.put(
        urls.path("allocations", record.instance_uuid),
        {
            "allocations": {
                rp: {"resources": res} for rp, res in wanted.items()
            },
            "project_id": owner.project_id,
            "user_id": owner.user_id,
            "consumer_generation": None,
        },
    )
    if resp.status == 204:
        return None
    return (
        f"Placement answered {resp.status} ({resp.error_code or 'no code'}):"
        f" {resp.detail}"
    )


def release_consumer(driver, consumer, force=False):
    """``nova-slices release``: delete one consumer's allocation on this
    host.  Refused for a consumer a guest here still uses (unless
    ``force``: the next reconcile then claims the guest's exact share
    again, which is how a wrong allocation is put right) and for one
    whose spawn or destroy is in progress."""
    key = canonical(consumer)
    if key is None:
        raise RequestError(
            f"consumer {consumer!r} is not a UUID: give the instance uuid "
            "that `nova-slices list` shows, e.g. "
            "5a178fdb-cd59-4dee-a4cc-71472229c4a3",
            code="release.consumer-invalid",
            key="CONSUMER_UUID",
            value=consumer,
        )
    with driver.host.lock():
        intent = driver.journal.get(key)
        if intent is not None and intent.live:
            raise GuestError(
                f"consumer {key}: a {intent.op} of {intent.name} is in "
                f"progress (process {intent.pid}); wait for it to finish",
                code="release.in-progress",
                key="CONSUMER_UUID",
                value=key,
            )
        guest = next(
            (
                r.name
                for _, r, _ in driver.guest_states()
                if r is not None and canonical(r.instance_uuid) == key
            ),
            None,
        )
        if guest is not None and not force:
            raise GuestError(
                f"consumer {key} is guest {guest}'s, which still runs on "
                f"this host: destroy it (nova-slices destroy {guest}), or "
                "give --force to release it anyway (the next sync claims "
                "the guest's exact share again)",
                code="release.guest-exists",
                key="CONSUMER_UUID",
                value=key,
            )
        held = release_here(driver, key)
        if not held:
            raise GuestError(
                f"consumer {key} holds no allocation on this host's "
                "providers: nothing to release",
                code="release.not-found",
                key="CONSUMER_UUID",
                value=key,
            )
        driver.journal.forget(key)
    names = {p.uuid: p.name for p in driver.providers.providers}
    LOG.warning(
        "released the allocation of consumer %s (%s) by request%s",
        key,
        _describe(held, names),
        f"; guest {guest} still runs" if guest else "",
    )
    return {
        "consumer": key,
        "guest": guest,
        "allocations": _named(held, names),
    }


__all__ = ["RepairReport", "release_consumer", "release_here", "repair"]
