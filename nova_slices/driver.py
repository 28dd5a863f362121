"""The slice driver: config, libvirt and Placement wired together.

This is the one place where the pure pieces (slice tree, provider tree,
unit-chain requests, template rendering) meet the edges (libvirt,
Placement).  nova-compute would call ``init_host``/``update_provider_tree``
/``spawn``/``destroy``; the CLI calls the same methods.
"""

import dataclasses
import datetime
import logging
import os
import uuid as uuidlib

from lxml import etree

from nova_slices.devices.manager import DeviceManager
from nova_slices.devices.mdev_backend import SysfsMdevBackend
from nova_slices.devices.mdev_config import resolve_mdev_types
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.devices.providers import mdev_providers, pci_providers
from nova_slices.devices.registry import MdevRegistry
from nova_slices.errors import (
    GuestError,
    NoCandidates,
    NovaSlicesError,
    TemplateError,
)
from nova_slices.placement import claims
from nova_slices.placement.client import expect
from nova_slices.placement.request_groups import slice_device_groups
from nova_slices.placement.sync import ProviderTreeSync
from nova_slices.provider_tree import build_provider_tree, root_uuid
from nova_slices.slices import encoding
from nova_slices.slices.tree import load_tree, units_class
from nova_slices.virt import metadata, templates
from nova_slices.virt.host_check import check_domain
from nova_slices.virt.schema import validate_domain_xml

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


@dataclasses.dataclass(frozen=True)
class Discrepancy:
    code: str
    message: str
    instance_uuid: str
    name: str | None = None


def _check_name(name):
    """libvirt refuses '/' in names (they become file names)."""
    if not name or "/" in name or len(name) > 200:
        raise GuestError(
            f"guest name {name!r} is invalid: it must be 1-200 characters "
            "without '/'",
            code="guest.name-invalid",
            key="name",
            value=name,
        ).with_status(2)


class SliceDriver:
    def __init__(self, conf, host, client, sync=None):
        self.conf = conf
        self.host = host
        self.client = client
        self.tree = load_tree(conf)
        root = root_uuid(host.hostname)
        device_providers, self.devices = self._device_setup(root)
        self.providers = build_provider_tree(
            host.hostname, self.tree, root, device_providers
        )
        self._sync = sync

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

    def device_groups(self, resource_class, extra_specs):
        """The DeviceGroups a slice guest's extra specs ask for."""
        if not extra_specs:
            return ()
        slice_classes = set(self.tree.classes) | {
            units_class(rc) for rc in self.tree.classes
        }
        own = encoding.slice_request(self.tree, resource_class).groups
        return slice_device_groups(extra_specs, set(own), slice_classes)

    @property
    def sync(self):
        """One provider-tree sync (and its local copy) per driver."""
        if self._sync is None:
            self._sync = ProviderTreeSync(
                self.client,
                resync_interval=self.conf.placement.resync_interval,
            )
        return self._sync

    # -- startup -----------------------------------------------------------
    def check_templates(self):
        """Every slice template exists, is readable and compiles."""
        for s in self.tree.slices.values():
            templates.check_slice_template(s.template_file)

    def update_provider_tree(self):
        return self.sync.sync(self.providers)

    # -- guests ------------------------------------------------------------
    def spawn(
        self,
        name,
        resource_class,
        instance_uuid=None,
        flavor=None,
        interfaces=(),
        user_metadata=None,
        extra_specs=None,
    ):
        """Claim a slice (and devices), bind, render, define and start.

        The claim is one Placement allocation; binding, rendering and
        defining happen under the host lock, so a device seen free is
        still free when the domain holding it is defined.  Any failure
        releases the allocation.
        """
        instance_uuid = instance_uuid or str(uuidlib.uuid4())
        _check_name(name)
        if self.host.lookup(name) is not None:
            raise GuestError(
                f"a guest named {name!r} already exists on this host",
                code="guest.name-in-use",
                key="name",
                value=name,
            )
        device_groups = self.device_groups(resource_class, extra_specs)
        self._check_offered(device_groups)
        claim = claims.claim_slice(
            self.client,
            self.tree,
            self.providers,
            resource_class,
            instance_uuid,
            CLI_PROJECT,
            CLI_USER,
            retries=self.conf.placement.claim_retries,
            devices=device_groups,
        )
        try:
            slice_name = encoding.slice_from_allocation(
                self.tree,
                claim.allocations,
                self.providers.slice_of_provider(),
                self.devices.provider_uuids if self.devices else frozenset(),
            )
            with self.host.lock():
                if self.host.lookup(name) is not None:
                    raise GuestError(
                        f"a guest named {name!r} already exists on this host",
                        code="guest.name-in-use",
                        key="name",
                        value=name,
                    )
                binding = (
                    self.devices.bind(claim.allocations, instance_uuid)
                    if self.devices
                    else None
                )
                xml = self.render(
                    name,
                    instance_uuid,
                    slice_name,
                    flavor,
                    interfaces,
                    user_metadata or {},
                    binding,
                )
                self.host.define_and_start(xml)
        except BaseException:
            claims.release(self.client, instance_uuid)
            raise
        LOG.info(
            "spawned %s (%s) on slice %s", name, instance_uuid, slice_name
        )
        return GuestView(
            name,
            instance_uuid,
            slice_name,
            resource_class,
            "running",
            claim.allocations,
            _devices_view(binding),
        )

    def render(
        self,
        name,
        instance_uuid,
        slice_name,
        flavor=None,
        interfaces=(),
        user_metadata=None,
        binding=None,
    ):
        """Domain XML for a guest on ``slice_name``, validated."""
        s = self.tree.slices[slice_name]
        context = {
            "instance": {"uuid": instance_uuid, "name": name},
            "flavor": flavor
            or {
                "name": s.resource_class.lower(),
                "vcpus": 0,
                "memory_mb": 0,
                "extra_specs": encoding.slice_request(
                    self.tree, s.resource_class
                ).nova_flavor_specs(),
            },
            "disk_path": os.path.join(
                self.conf.state_path, "instances", instance_uuid, "disk"
            ),
            "interfaces": list(interfaces),
            "metadata": dict(user_metadata or {}),
            "slice": {"name": s.name, "resource_class": s.resource_class},
            "devices": (
                self.devices.render_devices(binding)
                if binding is not None and self.devices
                else {"pci": [], "mdev": []}
            ),
            "host": {"hostname": self.host.hostname},
        }
        text = templates.render_slice_template(s.template_file, context)
        domain = etree.fromstring(text.encode())
        where = f"slice template {s.template_file!r}"
        if (
            domain.findtext("name") != name
            or (domain.findtext("uuid") or instance_uuid) != instance_uuid
        ):
            raise TemplateError(
                f"{where} must set <name>{{{{ instance.name }}}}</name> and "
                "<uuid>{{ instance.uuid }}</uuid>; it rendered name "
                f"{domain.findtext('name')!r}, uuid "
                f"{domain.findtext('uuid')!r}",
                code="template.identity",
                key="template_file",
                value=s.template_file,
            )
        metadata.inject(
            domain,
            metadata.GuestRecord(
                name,
                instance_uuid,
                s.name,
                s.resource_class,
                datetime.datetime.now(datetime.UTC).isoformat(
                    timespec="seconds"
                ),
                binding.pci if binding else (),
                (binding.mdevs + binding.create) if binding else (),
            ),
        )
        validate_domain_xml(domain)
        problems = check_domain(
            domain, self.host.topology(), self.host.pci_addresses()
        )
        if problems:
            raise TemplateError(
                f"{where} does not fit this host: " + "; ".join(problems),
                code="template.host-mismatch",
                key="template_file",
                value=s.template_file,
            )
        return etree.tostring(domain, encoding="unicode")

    def destroy(self, name):
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

    def guests(self):
        """Our guests with their allocations, and every disagreement."""
        usage = claims.tree_usage(self.client, self.providers)
        by_consumer = {}
        for slice_name, consumers in usage.items():
            for consumer, resources in consumers.items():
                by_consumer.setdefault(consumer, {})[slice_name] = resources
        views, problems = [], []
        seen = set()
        for dom in self.host.domains():
            record = metadata.read(dom.XMLDesc(0))
            if record is None:
                continue
            allocations = by_consumer.get(record.instance_uuid, {})
            seen.add(record.instance_uuid)
            views.append(
                GuestView(
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
                )
            )
            if not allocations:
                problems.append(
                    Discrepancy(
                        "guest.no-allocation",
                        f"guest {record.name} ({record.instance_uuid}) runs "
                        f"on slice {record.slice_name} but holds no "
                        "allocation in Placement; another guest may be "
                        "given that slice",
                        record.instance_uuid,
                        record.name,
                    )
                )
            elif record.slice_name not in allocations or not allocations[
                record.slice_name
            ].get(record.resource_class):
                problems.append(
                    Discrepancy(
                        "guest.allocation-mismatch",
                        f"guest {record.name} runs on slice "
                        f"{record.slice_name} but its allocation is on "
                        f"{sorted(allocations)}",
                        record.instance_uuid,
                        record.name,
                    )
                )
        for consumer, allocations in sorted(by_consumer.items()):
            if consumer not in seen:
                problems.append(
                    Discrepancy(
                        "allocation.no-guest",
                        f"consumer {consumer} holds slice allocations on "
                        f"{sorted(allocations)} but no guest on this host "
                        "records it; the slice stays unavailable until the "
                        "allocation is deleted",
                        consumer,
                    )
                )
        views.sort(key=lambda v: v.name)
        return views, problems

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

    def _check_offered(self, device_groups):
        """A class no device of this host has can never be allocated
        (and Placement would answer 400 for a class it never saw)."""
        offered = self._device_classes()
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

    def _device_classes(self):
        slice_uuids = self.providers.slice_of_provider()
        return sorted(
            {
                rc
                for p in self.providers.providers
                if p.uuid not in slice_uuids and p.parent_uuid is not None
                for rc in p.inventories
            }
        )

    def explain_unavailable(self, resource_class, extra_specs=None):
        """Why each slice of a class, and each device asked for, cannot
        be taken (for rejections)."""
        reasons = self._slice_reasons(resource_class)
        wanted = {
            rc
            for group in self.device_groups(resource_class, extra_specs)
            for rc, _ in group.resources
        }
        if wanted:
            for view in self.provider_views():
                for rc, inv in sorted(view["inventories"].items()):
                    if rc in wanted and view["slice"] is None:
                        free = inv["total"] - inv["reserved"] - inv["used"]
                        reasons.append(
                            {
                                "device": view["name"],
                                "reason": f"{rc}: {free} of "
                                f"{inv['total']} free",
                            }
                        )
        return reasons

    def _slice_reasons(self, resource_class):
        usage = claims.tree_usage(self.client, self.providers)
        in_use = {
            name
            for name, consumers in usage.items()
            if any(
                r.get(self.tree.slices[name].resource_class)
                for r in consumers.values()
            )
        }
        reasons = []
        shape = self.tree.classes.get(resource_class)
        for name in shape.slices if shape else ():
            if name in in_use:
                why = "in use"
            else:
                blocking = sorted(self.tree.conflicts(name) & in_use)
                why = (
                    f"conflicts with {', '.join(blocking)} in use"
                    if blocking
                    else "free"
                )
            reasons.append({"slice": name, "reason": why})
        return reasons


def _devices_view(binding):
    if binding is None:
        return {"pci": [], "mdevs": []}
    return {"pci": list(binding.pci), "mdevs": list(binding.mdev_uuids)}


__all__ = ["SliceDriver", "GuestView", "Discrepancy", "NovaSlicesError"]
