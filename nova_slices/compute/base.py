"""What every host driver shares: devices, the provider sync, guests.

A host either carves slices (:class:`nova_slices.compute.slices.SliceDriver`)
or runs dynamic NUMA-pinned guests
(:class:`nova_slices.compute.dynamic.DynamicDriver`); never both, as the
libvirt-slices spec prescribes for its first version.  Both report the
same device providers under the compute node, bind devices the same way,
destroy guests the same way and reconcile libvirt with Placement the same
way; that common part lives here.  A strategy says what the compute node
offers, what each of its guests holds and which allocation it must have.
"""

import abc
import contextlib
import dataclasses
import datetime
import functools
import logging

from lxml import etree

from nova_slices import faults
from nova_slices.compute.guests import GuestView
from nova_slices.compute.journal import Journal
from nova_slices.compute.reconcile import (
    GuestState,
    reconcile,
    unreadable_message,
    unreadable_problems,
)
from nova_slices.devices.manager import DeviceManager
from nova_slices.devices.mdev_backend import SysfsMdevBackend
from nova_slices.devices.mdev_config import resolve_mdev_types
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.devices.providers import mdev_providers, pci_providers
from nova_slices.devices.registry import MdevRegistry
from nova_slices.errors import (
    ConfigError,
    GuestError,
    HostError,
    NoCandidates,
    PlacementError,
)
from nova_slices.host.restrictions import load_restrictions
from nova_slices.placement import claims
from nova_slices.placement.client import expect
from nova_slices.placement.sync import ProviderTreeSync
from nova_slices.placement.urls import path
from nova_slices.provider_tree import build_provider_tree, root_uuid
from nova_slices.slices.tree import load_tree
from nova_slices.virt import metadata
from nova_slices.virt.holdings import domain_holdings
from nova_slices.virt.host_check import check_domain
from nova_slices.virt.schema import validate_domain_xml

LOG = logging.getLogger(__name__)


def check_not_mixed(conf, tree):
    """A host with slices runs no dynamic guest: refuse their options."""
    if not tree.slices:
        return
    for option in ("cpu_dedicated_set", "cpu_shared_set"):
        value = getattr(conf.compute, option)
        if value:
            raise ConfigError(
                f"[libvirt] slice_spec and [compute] {option} = {value!r} "
                "are both set: a host either carves slices or runs dynamic "
                "NUMA-pinned guests, never both (libvirt-slices spec, "
                f"first version). Remove [compute] {option} to keep the "
                "slices, or [libvirt] slice_spec for dynamic guests",
                code="config.mixed-host",
                key=f"[compute] {option}",
                value=value,
            )


class HostDriver(abc.ABC):
    """The common part; subclasses say what the compute node offers."""

    def __init__(self, conf, host, client, sync=None, own_devices=True):
        """``own_devices`` False leaves mdevs and PCI devices to someone
        else: inside Nova, Nova's own code reports and binds them."""
        self.conf = conf
        self.host = host
        self.client = client
        self.topology = host.topology()
        self.tree = load_tree(conf)
        check_not_mixed(conf, self.tree)
        root = root_uuid(host.hostname)
        device_providers, self.devices = (
            self._device_setup(root) if own_devices else ([], None)
        )
        self.providers = build_provider_tree(
            host.hostname,
            self.tree,
            root,
            device_providers,
            self._root_inventories(),
        )
        self._sync = sync
        #: spawns and destroys in progress (see compute.journal)
        self.journal = Journal(conf.state_path)

    def _root_inventories(self):
        """The compute node's own inventories ({} on a slice host)."""
        return {}

    def _device_setup(self, root):
        """Device providers and their binder, from [devices] and [pci].

        Built once at startup, so bad device configuration is refused
        there.  (providers, None) when no device is configured.
        """
        conf = self.conf
        if not (conf.devices.enabled_mdev_types or conf.pci.device_spec):
            return [], None
        host_devices = self.host.devices()
        mdev_types = resolve_mdev_types(conf, host_devices)
        specs = parse_device_specs(conf.pci.device_spec)
        allowed = assignable(specs, host_devices)
        hostname = self.host.hostname
        providers = mdev_providers(
            hostname, root, mdev_types, host_devices
        ) + pci_providers(hostname, root, allowed, mdev_types)
        manager = DeviceManager(
            self.host,
            root,
            mdev_types,
            allowed,
            SysfsMdevBackend(conf.devices.mdev_sysfs_root),
            MdevRegistry(conf.state_path),
        )
        return providers, manager

    @functools.cached_property
    def restrictions(self):
        """The host's CPU sets and reservations, checked against it."""
        return load_restrictions(self.conf, self.topology)

    @property
    def sync(self):
        """One provider-tree sync (and its local copy) per driver."""
        if self._sync is None:
            self._sync = ProviderTreeSync(
                self.client,
                resync_interval=self.conf.placement.resync_interval,
            )
        return self._sync

    def update_provider_tree(self):
        return self.sync.sync(self.providers)

    @staticmethod
    def check_name(name):
        """libvirt refuses '/' in names (they become file names)."""
        if not name or "/" in name or len(name) > 200:
            raise GuestError(
                f"guest name {name!r} is invalid: it must be 1-200 "
                "characters without '/'",
                code="guest.name-invalid",
                key="name",
                value=name,
            ).with_status(2)

    def check_name_free(self, name):
        """No guest of this host has ``name`` (libvirt's names are unique)."""
        self.refuse_unreadable(name)
        if self.host.lookup(name) is not None:
            raise GuestError(
                f"a guest named {name!r} already exists on this host",
                code="guest.name-in-use",
                key="name",
                value=name,
            )

    def refuse_unreadable(self, name):
        """A guest whose persisted file is unreadable cannot be used, and
        its name not taken again (that would overwrite the file)."""
        broken = self.host.unreadable.get(name)
        if broken is not None:
            raise HostError(
                f"a guest named {name!r} exists but cannot be used: "
                + unreadable_message(broken),
                code="host.domain-unreadable",
                key=broken.path,
                value=name,
            ).with_status(1)

    @contextlib.contextmanager
    def journalled_claim(self, instance_uuid, name, claim):
        """Claim (``claim()``, yielding its result) and run the block as
        one spawn in the journal: any failure inside deletes the
        instance's allocation (a guest that was not defined holds nothing
        in Placement), and a spawn killed before it finished leaves its
        entry for the reconciler to release.
        """
        with self.journal.entry("spawn", instance_uuid, name) as entry:
            try:
                result = claim()
            except (NoCandidates, PlacementError) as exc:
                # Placement said no: nothing was written.  Anything else
                # (an answer lost on the way) leaves the entry to the
                # reconciler, which releases whatever was written
                if (
                    isinstance(exc, NoCandidates)
                    or exc.code == "placement.claim-conflict"
                ):
                    entry.done()
                raise
            faults.after("claim")
            try:
                yield result
            except BaseException:
                claims.release(self.client, instance_uuid)
                entry.done()
                raise
            entry.done()

    def finish_domain(self, domain, record, refuse, mdev_uuids=None):
        """A rendered domain made ready to define: our record injected
        (stamped now), checked against libvirt's schema and against this
        host (``refuse(problems)`` is the error when it does not fit).

        Both strategies end here, so no guest is defined unchecked.
        """
        now = datetime.datetime.now(datetime.UTC)
        metadata.inject(
            domain,
            dataclasses.replace(
                record, created_at=now.isoformat(timespec="seconds")
            ),
        )
        validate_domain_xml(domain)
        problems = check_domain(
            domain, self.topology, self.host.pci_addresses(), mdev_uuids
        )
        if problems:
            raise refuse(problems)
        return etree.tostring(domain, encoding="unicode")

    # -- guests ------------------------------------------------------------
    def domains(self):
        """(domain, parsed XML, GuestRecord or None) of every domain
        libvirt holds, each XML read and parsed once."""
        out = []
        for dom in self.host.domains():
            element = etree.fromstring(dom.XMLDesc(0).encode())
            out.append((dom, element, metadata.record_of(element)))
        return out

    def recorded_guests(self):
        """(domain, GuestRecord) of every guest carrying our record."""
        return [(d, r) for d, _, r in self.domains() if r is not None]

    def guest_view(self, dom, record, allocations):
        """How ``list`` shows a guest: its record and its allocations."""
        return GuestView(
            record.name,
            record.instance_uuid,
            record.slice_name,
            record.resource_class,
            "running" if dom.isActive() else "shut off",
            self.shown_allocations(allocations),
            {
                "pci": list(record.pci),
                "mdevs": [m[0] for m in record.mdevs],
            },
            (
                dict(zip(metadata.FLAVOR_FIELDS, record.flavor, strict=True))
                if record.flavor
                else None
            ),
            tuple(c.to_dict() for c in record.cells),
        )

    def allocations_by_consumer(self):
        """{consumer: {provider uuid: resources}} over this host's
        providers: the one read of Placement's side of every guest."""
        out = {}
        for p in self.providers.providers:
            resp = self.client.get(
                path("resource_providers", p.uuid, "allocations")
            )
            if resp.status == 404:
                continue
            for consumer, alloc in (
                expect(resp, 200).body["allocations"].items()
            ):
                out.setdefault(consumer, {})[p.uuid] = alloc["resources"]
        return out

    def guests(self):
        """Our guests with their allocations, and every disagreement
        between libvirt, Placement and the host's usage
        (:func:`nova_slices.compute.reconcile.reconcile`)."""
        by_consumer = self.allocations_by_consumer()
        views, states = [], []
        for dom, record, state in self.guest_states():
            if record is not None:
                allocations = by_consumer.get(record.instance_uuid, {})
                views.append(self.guest_view(dom, record, allocations))
            states.append(state)
        names = {p.uuid: p.name for p in self.providers.providers}
        problems = reconcile(
            states,
            by_consumer,
            self.topology,
            self.restrictions,
            names,
        )
        views.sort(key=lambda v: v.name)
        return views, unreadable_problems(
            self.host.unreadable.values()
        ) + list(problems)

    def guest_states(self):
        """(domain, GuestRecord or None, GuestState) of every domain."""
        out = []
        for dom, element, record in self.domains():
            held = domain_holdings(element)
            if record is None:
                out.append((dom, None, GuestState(dom.name(), held)))
                continue
            out.append(
                (
                    dom,
                    record,
                    GuestState(
                        record.name,
                        self.holdings(record, held),
                        record.instance_uuid,
                        self.expected_allocation(record),
                        self.where(record),
                    ),
                )
            )
        return out

    def full_allocation(self, record):
        """Everything a guest's allocation held when it was claimed: its
        expected share plus its bound devices' (to claim it again)."""
        out = {
            rp: dict(res)
            for rp, res in self.expected_allocation(record).items()
        }
        if self.devices is not None:
            for rp, res in self.devices.allocation_of(
                record.pci, record.mdevs
            ).items():
                mine = out.setdefault(rp, {})
                for rc, n in res.items():
                    mine[rc] = mine.get(rc, 0) + n
        return out

    # what each strategy says about its guests
    def holdings(self, record, from_xml):
        """What the guest holds of the host (its XML's word by default)."""
        return from_xml

    @abc.abstractmethod
    def expected_allocation(self, record):
        """{provider uuid: {class: amount}} the guest's allocation must
        hold exactly."""

    @abc.abstractmethod
    def where(self, record):
        """Where the guest runs, for messages."""

    @abc.abstractmethod
    def check_startup(self):
        """Refuse, before a command uses the host, what building the
        driver could not see (a slice host renders its templates to find
        slices that overlap)."""

    @abc.abstractmethod
    def validate(self):
        """Check the host's configuration against the host itself:
        {"valid", "errors", ...}, with every problem found (what
        ``nova-slices validate`` prints and start-up refuses)."""

    def shown_allocations(self, allocations):
        """A guest's allocations as ``list`` shows them."""
        return allocations

    def destroy(self, name):
        """Stop and undefine a guest, then delete its allocations.

        Journalled from before the undefine until after the release, so
        a destroy killed in between leaves its allocation to the
        reconciler."""
        with contextlib.ExitStack() as stack:
            with self.host.lock():
                dom = self.host.lookup(name)
                if dom is None:
                    self.refuse_unreadable(name)
                    raise GuestError(
                        f"no guest named {name!r} on this host",
                        code="guest.not-found",
                        key="name",
                        value=name,
                    )
                record = metadata.read(dom.XMLDesc(0))
                consumer = record.instance_uuid if record else None
                entry = (
                    stack.enter_context(
                        self.journal.entry("destroy", consumer, name)
                    )
                    if consumer
                    else None
                )
                self.host.undefine(dom)
            faults.after("undefine")
            if entry is not None:
                claims.release(self.client, consumer)
                faults.after("release")
                entry.done()
        return record

    def provider_views(self):
        """The tree as Placement holds it, with usage, parents first.

        Providers this host wants but Placement lacks are listed with
        ``reported`` false (``nova-slices sync`` or a spawn reports them);
        stale providers Placement still holds (kept because they hold
        allocations) are listed too, so nothing is hidden.
        """
        held = self.sync.refresh(self.providers.root.uuid)
        slice_of = self.providers.slice_of_provider()
        desired = self.providers.by_uuid()
        order = [p.uuid for p in self.providers.providers]
        order += sorted(u for u in held if u not in desired)
        out = []
        for uuid in order:
            cached = held.get(uuid)
            if cached is None:
                p = desired[uuid]
                inv = {
                    rc: {"total": i.total, "reserved": i.reserved, "used": 0}
                    for rc, i in p.inventories.items()
                }
                out.append(
                    {
                        "name": p.name,
                        "uuid": uuid,
                        "parent_uuid": p.parent_uuid,
                        "slice": p.slice_name,
                        "inventories": inv,
                        "traits": sorted(p.traits),
                        "reported": False,
                    }
                )
                continue
            used = expect(
                self.client.get(path("resource_providers", uuid, "usages")),
                200,
            ).body["usages"]
            out.append(
                {
                    "name": cached.name,
                    "uuid": uuid,
                    "parent_uuid": cached.parent_uuid,
                    "slice": slice_of.get(uuid),
                    "inventories": {
                        rc: {
                            "total": i["total"],
                            "reserved": i["reserved"],
                            "used": used.get(rc, 0),
                        }
                        for rc, i in cached.inventories.items()
                    },
                    "traits": sorted(cached.traits),
                    "reported": True,
                }
            )
        return out

    def check_offered(self, device_groups):
        """A class no device of this host has can never be allocated
        (and Placement would answer 400 for a class it never saw)."""
        offered = self.device_classes()
        for group in device_groups:
            for rc, _ in group.resources:
                if rc not in offered:
                    raise NoCandidates(
                        f"resources{group.suffix}:{rc}: no device of this "
                        f"host offers {rc}; offered: "
                        + (", ".join(offered) or "none"),
                        code="device.not-offered",
                        key=f"resources{group.suffix}:{rc}",
                        value=rc,
                    )

    def device_classes(self):
        slice_uuids = self.providers.slice_of_provider()
        return sorted(
            {
                rc
                for p in self.providers.providers
                if p.uuid not in slice_uuids and p.parent_uuid is not None
                for rc in p.inventories
            }
        )

    def device_reasons(self, device_groups):
        """How many of each device class asked for are free."""
        wanted = {rc for group in device_groups for rc, _ in group.resources}
        reasons = []
        if wanted:
            for view in self.provider_views():
                for rc, inv in sorted(view["inventories"].items()):
                    if (
                        rc in wanted
                        and view["slice"] is None
                        and view["parent_uuid"] is not None
                    ):
                        free = inv["total"] - inv["reserved"] - inv["used"]
                        reasons.append(
                            {
                                "device": view["name"],
                                "reason": f"{rc}: {free} of "
                                f"{inv['total']} free",
                            }
                        )
        return reasons


__all__ = ["HostDriver", "check_not_mixed"]
