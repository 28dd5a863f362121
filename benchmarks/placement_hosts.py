"""Setup for ``placement_scale.py``: N slice hosts, and where the plain
flavor runs.

Not timed.  Each slice host is the shipped 8-GPU tree built by the
product's own :func:`build_provider_tree` (named ``host-0000``...), with
the root inventory Nova's driver reports on a slice host: HOST_UNITS and
Nova's DISK_GB (``LibvirtSlicesDriver.update_provider_tree``).  A slice
host reports no VCPU or MEMORY_MB (DESIGN 4), so a plain flavor has
nothing to land on there; the baseline comes in two forms:

``same-hosts`` (:data:`SAME_HOSTS`, the issue's goal: "a plain flavor on
the same 1000 hosts")
    every slice root also carries a plain compute node's VCPU and
    MEMORY_MB (and, on the partly used half, a plain guest's usage), so
    the plain flavor is answered by the very trees the slice flavors are:
    the ratio is what the slice request costs over an ordinary one.
``plain-hosts`` (:data:`PLAIN_HOSTS`, a reference)
    slice hosts keep exactly their production inventory, and the plain
    flavor runs on N sibling one-provider compute nodes (``plain-0000``...)
    in the same database: the ratio then also carries the price of a
    12-provider tree, which Placement summarises in full for every
    matching tree whatever the request.

Providers and inventories go straight into Placement's tables in one
transaction (one HTTP call per provider would take minutes at 1000 hosts);
the custom resource classes are created through the API first, so
Placement's own ids are used.  Usage goes through ``POST /allocations``,
so Placement itself checks every allocation of the "partly used" half.
"""

import dataclasses
import datetime

import os_resource_classes as orc
import sqlalchemy
from placement.db.sqlalchemy import models

from nova_slices.placement.client import expect
from nova_slices.provider_tree import (
    ROOT_TRAITS,
    Inventory,
    Provider,
    build_provider_tree,
    root_uuid,
)
from nova_slices.slices import encoding
from nova_slices.slices.tree import HOST_UNITS

PROJECT, USER = "p" * 32, "u" * 32
#: what Nova reports on a slice host's root besides HOST_UNITS
SLICE_ROOT_DISK = {orc.DISK_GB: Inventory(total=2000)}
#: a plain compute node (Nova's default allocation ratios)
PLAIN_ROOT = {
    orc.VCPU: Inventory(total=64, allocation_ratio=4.0),
    orc.MEMORY_MB: Inventory(total=262144, allocation_ratio=1.0),
    orc.DISK_GB: Inventory(total=2000),
}
#: slices in use on the partly used half, cycled over the hosts
USAGE_PATTERNS = (
    ("1_1",),
    ("4_2",),
    ("1_1", "1_5"),
    ("1_2", "1_3", "4_2"),
    ("1_1", "1_2", "1_3"),
)
PLAIN_USAGE = {orc.VCPU: 8, orc.MEMORY_MB: 16384, orc.DISK_GB: 100}
SAME_HOSTS, PLAIN_HOSTS = "same-hosts", "plain-hosts"
BASELINES = (SAME_HOSTS, PLAIN_HOSTS)


@dataclasses.dataclass
class Hosts:
    """What was built, for checking candidates."""

    tree: object
    #: provider uuid -> (host index, slice name or None for the root)
    where: dict
    parent_of: dict
    #: host index -> slice names in use
    in_use: dict
    #: plain root uuid -> host index
    plain: dict
    slice_roots: dict


def slice_host(i, tree, baseline=PLAIN_HOSTS):
    providers = build_provider_tree(f"host-{i:04d}", tree)
    root = providers.root
    extra = PLAIN_ROOT if baseline == SAME_HOSTS else SLICE_ROOT_DISK
    root = dataclasses.replace(root, inventories={**root.inventories, **extra})
    return (root,) + providers.providers[1:]


def plain_host(i):
    name = f"plain-{i:04d}"
    return (
        Provider(name, root_uuid(name), None, dict(PLAIN_ROOT), ROOT_TRAITS),
    )


def build(client, database_url, tree, n, baseline=PLAIN_HOSTS):
    """Create n slice hosts (and, for ``plain-hosts``, n plain hosts); use
    the odd-numbered half."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline {baseline!r}: one of {BASELINES}")
    hosts = Hosts(tree, {}, {}, {}, {}, {})
    trees = []
    for i in range(n):
        providers = slice_host(i, tree, baseline)
        trees.append(providers)
        hosts.slice_roots[providers[0].uuid] = i
        for p in providers:
            hosts.where[p.uuid] = (i, p.slice_name)
            hosts.parent_of[p.uuid] = p.parent_uuid
        if baseline == SAME_HOSTS:
            hosts.plain[providers[0].uuid] = i
            continue
        plain = plain_host(i)
        trees.append(plain)
        hosts.plain[plain[0].uuid] = i
    classes = sorted({rc for t in trees for p in t for rc in p.inventories})
    for rc in classes:
        if orc.is_custom(rc):
            expect(
                client.put(
                    f"/resource_classes/{rc}", None, microversion="1.7"
                ),
                201,
                204,
            )
    _insert(database_url, trees)
    _use(client, hosts, trees)
    return hosts


def _insert(database_url, trees):
    engine = sqlalchemy.create_engine(database_url)
    rp_t = models.ResourceProvider.__table__
    inv_t = models.Inventory.__table__
    rc_t = models.ResourceClass.__table__
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    try:
        with engine.begin() as conn:
            rc_id = {
                name: id_
                for id_, name in conn.execute(
                    sqlalchemy.select(rc_t.c.id, rc_t.c.name)
                )
            }
            next_id = (
                conn.execute(
                    sqlalchemy.select(sqlalchemy.func.max(rp_t.c.id))
                ).scalar()
                or 0
            ) + 1
            id_of, rps, invs = {}, [], []
            for providers in trees:
                root_id = next_id
                for p in providers:
                    id_of[p.uuid] = next_id
                    rps.append(
                        {
                            "id": next_id,
                            "uuid": p.uuid,
                            "name": p.name,
                            "generation": 1,
                            "root_provider_id": root_id,
                            "parent_provider_id": id_of.get(p.parent_uuid),
                            "created_at": now,
                        }
                    )
                    for rc, inv in p.inventories.items():
                        row = inv.to_placement()
                        row.update(
                            resource_provider_id=next_id,
                            resource_class_id=rc_id[rc],
                            created_at=now,
                        )
                        invs.append(row)
                    next_id += 1
            conn.execute(rp_t.insert(), rps)
            conn.execute(inv_t.insert(), invs)
    finally:
        engine.dispose()


def _consumer(k):
    return f"00000000-0000-4000-8000-{k:012d}"


def _use(client, hosts, trees, chunk=200):
    """Allocate the usage patterns on the odd hosts, in bulk POSTs."""
    tree = hosts.tree
    body = {}
    k = 0
    for providers in trees:
        root = providers[0]
        if root.uuid in hosts.plain:
            i = hosts.plain[root.uuid]
            if i % 2:
                body[_consumer(k)] = _alloc({root.uuid: PLAIN_USAGE})
                k += 1
            if root.uuid not in hosts.slice_roots:
                continue
        i = hosts.slice_roots[root.uuid]
        hosts.in_use[i] = set()
        if i % 2 == 0:
            continue
        uuid_of = {p.slice_name: p.uuid for p in providers if p.slice_name}
        for name in USAGE_PATTERNS[(i // 2) % len(USAGE_PATTERNS)]:
            resources = {
                uuid_of[n]: res
                for n, res in encoding.slice_allocation(tree, name).items()
            }
            resources[root.uuid] = {HOST_UNITS: tree.slices[name].leaves}
            body[_consumer(k)] = _alloc(resources)
            k += 1
            hosts.in_use[i].add(name)
    items = list(body.items())
    for start in range(0, len(items), chunk):
        expect(
            client.post("/allocations", dict(items[start : start + chunk])),
            204,
        )


def _alloc(resources):
    return {
        "allocations": {
            rp: {"resources": res} for rp, res in resources.items()
        },
        "project_id": PROJECT,
        "user_id": USER,
        "consumer_generation": None,
    }
