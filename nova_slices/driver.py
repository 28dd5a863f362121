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

from nova_slices.devices.mdev_config import resolve_mdev_types
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.devices.providers import mdev_providers, pci_providers
from nova_slices.errors import GuestError, NovaSlicesError, TemplateError
from nova_slices.placement import claims
from nova_slices.placement.client import expect
from nova_slices.placement.sync import ProviderTreeSync
from nova_slices.provider_tree import build_provider_tree, root_uuid
from nova_slices.slices import encoding
from nova_slices.slices.tree import load_tree
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
        self.providers = build_provider_tree(
            host.hostname, self.tree, root, self._device_providers(root)
        )
        self._sync = sync

    def _device_providers(self, root):
        """Device providers from [devices] and [pci] device_spec, if any.

        Built once at startup, so bad device configuration is refused
        there.
        """
        conf = self.conf
        if not (conf.devices.enabled_mdev_types or conf.pci.device_spec):
            return []
        host_devices = self.host.devices()
        mdev_types = resolve_mdev_types(conf, host_devices)
        specs = parse_device_specs(conf.pci.device_spec)
        allowed = assignable(specs, host_devices)
        hostname = self.host.hostname
        return mdev_providers(
            hostname, root, mdev_types, host_devices
        ) + pci_providers(hostname, root, allowed, mdev_types)

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
    ):
        """Claim a slice, render its template, define and start it."""
        instance_uuid = instance_uuid or str(uuidlib.uuid4())
        _check_name(name)
        if self.host.lookup(name) is not None:
            raise GuestError(
                f"a guest named {name!r} already exists on this host",
                code="guest.name-in-use",
                key="name",
                value=name,
            )
        claim = claims.claim_slice(
            self.client,
            self.tree,
            self.providers,
            resource_class,
            instance_uuid,
            CLI_PROJECT,
            CLI_USER,
            retries=self.conf.placement.claim_retries,
        )
        try:
            slice_name = encoding.slice_from_allocation(
                self.tree,
                claim.allocations,
                self.providers.slice_of_provider(),
            )
            xml = self.render(
                name,
                instance_uuid,
                slice_name,
                flavor,
                interfaces,
                user_metadata or {},
            )
            with self.host.lock():
                if self.host.lookup(name) is not None:
                    raise GuestError(
                        f"a guest named {name!r} already exists on this host",
                        code="guest.name-in-use",
                        key="name",
                        value=name,
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
        )

    def render(
        self,
        name,
        instance_uuid,
        slice_name,
        flavor=None,
        interfaces=(),
        user_metadata=None,
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
            "devices": {"pci": [], "mdev": []},
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

    def explain_unavailable(self, resource_class):
        """Why each slice of a class cannot be taken (for rejections)."""
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


__all__ = ["SliceDriver", "GuestView", "Discrepancy", "NovaSlicesError"]
