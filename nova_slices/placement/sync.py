"""Make Placement hold the desired provider tree, writing only changes.

Like Nova's report client, we keep a local copy of what Placement holds
for this host (providers, generations, inventories, traits) so that an
unchanged periodic sync makes no call at all.  The copy is refreshed from
Placement on a generation conflict (409) and after ``resync_interval``
seconds.  Providers are created parents first and removed children first;
a stale provider that still holds allocations is never removed: it stays
with reserved = total so nothing new lands on it, and a warning names it.
"""

import dataclasses
import logging
import time

import os_resource_classes as orc

from nova_slices.errors import PlacementError
from nova_slices.placement import urls
from nova_slices.placement.client import expect
from nova_slices.placement.urls import path

LOG = logging.getLogger(__name__)
CONFLICT_RETRIES = 4


@dataclasses.dataclass
class CachedProvider:
    name: str
    parent_uuid: str | None
    generation: int
    inventories: dict  # rc -> placement inventory dict
    traits: frozenset


@dataclasses.dataclass
class SyncResult:
    created: list = dataclasses.field(default_factory=list)
    updated: list = dataclasses.field(default_factory=list)
    deleted: list = dataclasses.field(default_factory=list)
    kept: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)

    @property
    def changed(self):
        return bool(self.created or self.updated or self.deleted)


class ProviderTreeSync:
    """Sync one host's tree; keep one instance per host per process."""

    def __init__(self, client, resync_interval=300, clock=time.monotonic):
        self.client = client
        self.resync_interval = resync_interval
        self.clock = clock
        self._cache = None  # uuid -> CachedProvider, or None: unknown
        self._root = None
        self._refreshed_at = None
        self._classes = set()
        self._traits = set()

    # -- reading ---------------------------------------------------------
    def invalidate(self):
        self._cache = None

    def _stale(self, root):
        return (
            self._cache is None
            or self._root != root
            or self.clock() - self._refreshed_at >= self.resync_interval
        )

    def refresh(self, root):
        """Re-read this host's tree from Placement."""
        resp = expect(
            self.client.get(
                path("resource_providers"), params={"in_tree": root}
            ),
            200,
        )
        cache = {}
        for rp in resp.body["resource_providers"]:
            cache[rp["uuid"]] = self._read_provider(rp)
        classes = expect(self.client.get(path("resource_classes")), 200).body
        self._classes = {rc["name"] for rc in classes["resource_classes"]}
        traits = expect(
            self.client.get(
                path("traits"), params={"name": "startswith:CUSTOM_"}
            ),
            200,
        ).body
        self._traits = set(traits["traits"])
        self._cache, self._root = cache, root
        self._refreshed_at = self.clock()
        return cache

    def _read_provider(self, rp):
        uuid = rp["uuid"]
        inv = expect(
            self.client.get(path("resource_providers", uuid, "inventories")),
            200,
        ).body
        traits = expect(
            self.client.get(path("resource_providers", uuid, "traits")), 200
        ).body
        return CachedProvider(
            rp["name"],
            rp.get("parent_provider_uuid"),
            inv["resource_provider_generation"],
            inv["inventories"],
            frozenset(traits["traits"]),
        )

    def _refresh_one(self, uuid):
        resp = self.client.get(path("resource_providers", uuid))
        if resp.status == 404:
            self._cache.pop(uuid, None)
            return None
        expect(resp, 200)
        self._cache[uuid] = self._read_provider(resp.body)
        return self._cache[uuid]

    def cached(self):
        return dict(self._cache or {})

    # -- writing ---------------------------------------------------------
    def sync(self, tree):
        """Bring Placement to ``tree``; return what changed."""
        root = tree.root.uuid
        if self._stale(root):
            self.refresh(root)
        result = SyncResult()
        self._ensure_classes(tree.resource_classes())
        self._ensure_traits(
            sorted({t for p in tree.providers for t in p.traits})
        )
        desired = {p.uuid for p in tree.providers}
        for provider in tree.providers:
            self._ensure_provider(provider, result)
        self._remove_stale(desired, tree, result)
        return result

    def _ensure_classes(self, classes):
        for rc in classes:
            urls.resource_class(rc)
            if rc in self._classes or not orc.is_custom(rc):
                continue
            expect(
                self.client.put(path("resource_classes", rc), None), 201, 204
            )
            self._classes.add(rc)

    def _ensure_traits(self, traits):
        for trait in traits:
            urls.trait(trait)
            if trait in self._traits or not trait.startswith("CUSTOM_"):
                continue
            expect(self.client.put(path("traits", trait), None), 201, 204)
            self._traits.add(trait)

    def _ensure_provider(self, provider, result):
        cached = self._cache.get(provider.uuid)
        if cached is None:
            cached = self._create(provider)
            result.created.append(provider.name)
        elif (cached.name, cached.parent_uuid) != (
            provider.name,
            provider.parent_uuid,
        ):
            self._move(provider)
            result.updated.append(provider.name)
        inventories = {
            rc: inv.to_placement() for rc, inv in provider.inventories.items()
        }
        changed = self._put_with_retry(
            provider.uuid, "inventories", "inventories", inventories
        )
        changed |= self._put_with_retry(
            provider.uuid, "traits", "traits", sorted(provider.traits)
        )
        if changed and provider.name not in result.created:
            result.updated.append(provider.name)

    def _create(self, provider):
        body = {"name": provider.name, "uuid": provider.uuid}
        if provider.parent_uuid:
            body["parent_provider_uuid"] = provider.parent_uuid
        resp = self.client.post(path("resource_providers"), body)
        if resp.status == 409:
            # another process of this host may have just created it
            existing = self._refresh_one(provider.uuid)
            if existing is not None:
                return existing
            raise PlacementError(
                f"cannot create resource provider {provider.name!r} "
                f"({provider.uuid}): {resp.detail}. Another provider "
                "probably has this name: set [DEFAULT] host to a unique "
                "name or remove the old provider.",
                code="placement.provider-name-conflict",
                value=provider.name,
            )
        expect(resp, 200)
        cached = CachedProvider(
            provider.name,
            provider.parent_uuid,
            resp.body["generation"],
            {},
            frozenset(),
        )
        self._cache[provider.uuid] = cached
        return cached

    def _move(self, provider):
        body = {
            "name": provider.name,
            "parent_provider_uuid": provider.parent_uuid,
        }
        resp = expect(
            self.client.put(path("resource_providers", provider.uuid), body),
            200,
        )
        cached = self._cache[provider.uuid]
        cached.name, cached.parent_uuid = provider.name, provider.parent_uuid
        cached.generation = resp.body["generation"]

    def _put_with_retry(self, uuid, what, field, value):
        """PUT inventories or traits if they differ; retry on conflict."""
        for _ in range(CONFLICT_RETRIES):
            cached = self._cache.get(uuid)
            if cached is None:
                raise PlacementError(
                    f"resource provider {uuid} vanished during sync",
                    code="placement.provider-vanished",
                )
            current = getattr(cached, field)
            if field == "traits":
                if frozenset(value) == current:
                    return False
            elif _same_inventories(current, value):
                return False
            resp = self.client.put(
                path("resource_providers", uuid, what),
                {
                    "resource_provider_generation": cached.generation,
                    field: value,
                },
            )
            if resp.status == 409 and resp.error_code in (
                "placement.concurrent_update",
                None,
            ):
                LOG.info(
                    "generation conflict on %s %s; refreshing", uuid, what
                )
                self._refresh_one(uuid)
                continue
            expect(resp, 200)
            cached.generation = resp.body["resource_provider_generation"]
            if field == "traits":
                cached.traits = frozenset(value)
            else:
                cached.inventories = resp.body["inventories"]
            return True
        raise PlacementError(
            f"gave up writing {what} of provider {uuid} after "
            f"{CONFLICT_RETRIES} generation conflicts",
            code="placement.concurrent_update",
        )

    def _remove_stale(self, desired, tree, result):
        stale = [u for u in self._cache if u not in desired]
        # children first: deepest providers go before their parents
        stale.sort(key=lambda u: -self._depth(u))
        for uuid in stale:
            cached = self._cache[uuid]
            consumers = self._consumers(uuid)
            if consumers:
                self._reserve_all(uuid, cached)
                result.kept.append(cached.name)
                message = (
                    f"resource provider {cached.name} ({uuid}) is no longer "
                    f"configured but holds allocations of "
                    f"{', '.join(sorted(consumers))}; kept with reserved = "
                    "total until they are gone"
                )
                result.warnings.append(message)
                LOG.warning(message)
                continue
            resp = self.client.delete(path("resource_providers", uuid))
            if resp.status == 409:
                message = (
                    f"stale resource provider {cached.name} ({uuid}) could "
                    f"not be removed: {resp.detail}"
                )
                result.warnings.append(message)
                LOG.warning(message)
                continue
            expect(resp, 204, 404)
            del self._cache[uuid]
            result.deleted.append(cached.name)

    def _depth(self, uuid):
        depth, cur = 0, self._cache.get(uuid)
        while cur is not None and cur.parent_uuid:
            depth += 1
            cur = self._cache.get(cur.parent_uuid)
        return depth

    def _consumers(self, uuid):
        resp = expect(
            self.client.get(path("resource_providers", uuid, "allocations")),
            200,
        )
        return set(resp.body["allocations"])

    def _reserve_all(self, uuid, cached):
        reserved = {
            rc: dict(inv, reserved=inv["total"])
            for rc, inv in cached.inventories.items()
        }
        self._put_with_retry(uuid, "inventories", "inventories", reserved)


_INVENTORY_FIELDS = (
    "total",
    "reserved",
    "min_unit",
    "max_unit",
    "step_size",
    "allocation_ratio",
)


def _same_inventories(current, desired):
    if set(current) != set(desired):
        return False
    for rc, want in desired.items():
        have = current[rc]
        for field in _INVENTORY_FIELDS:
            if field in want and float(have.get(field, -1)) != float(
                want[field]
            ):
                return False
    return True
