"""What every host driver shares: devices, the provider sync, destroy.

A host either carves slices (:class:`nova_slices.driver.SliceDriver`) or
runs dynamic NUMA-pinned guests
(:class:`nova_slices.dynamic.driver.DynamicDriver`); never both, as the
libvirt-slices spec prescribes for its first version.  Both report the
same device providers under the compute node, bind devices the same way
and destroy guests the same way; that common part lives here.
"""

import dataclasses
import logging

from nova_slices.devices.manager import DeviceManager
from nova_slices.devices.mdev_backend import SysfsMdevBackend
from nova_slices.devices.mdev_config import resolve_mdev_types
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.devices.providers import mdev_providers, pci_providers
from nova_slices.devices.registry import MdevRegistry
from nova_slices.errors import ConfigError, GuestError, NoCandidates
from nova_slices.placement import claims
from nova_slices.placement.client import expect
from nova_slices.placement.sync import ProviderTreeSync
from nova_slices.provider_tree import build_provider_tree, root_uuid
from nova_slices.slices.tree import load_tree
from nova_slices.virt import metadata

LOG = logging.getLogger(__name__)

#: who owns allocations made from the command line
CLI_PROJECT = "4e6f7661-536c-6963-6573-50726f6a6563"
CLI_USER = "4e6f7661-536c-6963-6573-557365720000"


@dataclasses.dataclass(frozen=True)
class GuestView:
    name: str
    instance_uuid: str | None
    slice_name: str | None
    resource_class: str | None
    state: str
    allocations: dict
    #: {"pci": [addresses], "mdevs": [uuids]} bound at spawn
    devices: dict = dataclasses.field(default_factory=dict)
    #: a dynamic guest's flavor {"vcpus", "memory_mb", "disk_gb"}
    flavor: dict | None = None
    #: a dynamic guest's NUMA cells as the fitter placed them
    cells: tuple = ()


@dataclasses.dataclass(frozen=True)
class Discrepancy:
    code: str
    message: str
    instance_uuid: str
    name: str | None = None


def check_name(name):
    """libvirt refuses '/' in names (they become file names)."""
    if not name or "/" in name or len(name) > 200:
        raise GuestError(
            f"guest name {name!r} is invalid: it must be 1-200 characters "
            "without '/'",
            code="guest.name-invalid",
            key="name",
            value=name,
        ).with_status(2)


def check_name_free(host, name):
    if host.lookup(name) is not None:
        raise GuestError(
            f"a guest named {name!r} already exists on this host",
            code="guest.name-in-use",
            key="name",
            value=name,
        )


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


def devices_view(binding):
    if binding is None:
        return {"pci": [], "mdevs": []}
    return {"pci": list(binding.pci), "mdevs": list(binding.mdev_uuids)}


class HostDriver:
    """The common part; subclasses say what the compute node offers."""

    def __init__(self, conf, host, client, sync=None):
        self.conf = conf
        self.host = host
        self.client = client
        self.tree = load_tree(conf)
        check_not_mixed(conf, self.tree)
        root = root_uuid(host.hostname)
        device_providers, self.devices = self._device_setup(root)
        self.providers = build_provider_tree(
            host.hostname,
            self.tree,
            root,
            device_providers,
            self._root_inventories(),
        )
        self._sync = sync

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

    # -- guests ------------------------------------------------------------
    def recorded_guests(self):
        """(domain, GuestRecord) of every guest carrying our record."""
        out = []
        for dom in self.host.domains():
            record = metadata.read(dom.XMLDesc(0))
            if record is not None:
                out.append((dom, record))
        return out

    @staticmethod
    def guest_view(dom, record, allocations):
        """How ``list`` shows a guest: its record and its allocations."""
        return GuestView(
            record.name,
            record.instance_uuid,
            record.slice_name,
            record.resource_class,
            "running" if dom.isActive() else "shut off",
            allocations,
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

    def destroy(self, name):
        """Stop and undefine a guest, then delete its allocations."""
        with self.host.lock():
            dom = self.host.lookup(name)
            if dom is None:
                raise GuestError(
                    f"no guest named {name!r} on this host",
                    code="guest.not-found",
                    key="name",
                    value=name,
                )
            record = metadata.read(dom.XMLDesc(0))
            self.host.undefine(dom)
        if record and record.instance_uuid:
            claims.release(self.client, record.instance_uuid)
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
                self.client.get(f"/resource_providers/{uuid}/usages"), 200
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


__all__ = [
    "CLI_PROJECT",
    "CLI_USER",
    "Discrepancy",
    "GuestView",
    "HostDriver",
    "check_name",
    "check_name_free",
    "check_not_mixed",
    "devices_view",
]
