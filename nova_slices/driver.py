"""The slice driver: config, libvirt and Placement wired together.

This is the one place where the pure pieces (slice tree, provider tree,
unit-chain requests, template rendering) meet the edges (libvirt,
Placement).  nova-compute would call ``init_host``/``update_provider_tree``
/``spawn``/``destroy``; the CLI calls the same methods.
"""

import datetime
import logging
import os
import uuid as uuidlib

from lxml import etree

from nova_slices.errors import NovaSlicesError, TemplateError
from nova_slices.host_driver import (
    CLI_PROJECT,
    CLI_USER,
    Discrepancy,
    GuestView,
    HostDriver,
    check_name,
    check_name_free,
    devices_view,
)
from nova_slices.placement import claims
from nova_slices.placement.request_groups import slice_device_groups
from nova_slices.slices import encoding
from nova_slices.slices.tree import units_class
from nova_slices.virt import metadata, templates
from nova_slices.virt.host_check import check_domain
from nova_slices.virt.schema import validate_domain_xml

LOG = logging.getLogger(__name__)


class SliceDriver(HostDriver):
    """A host carved into slices: operator templates, no root inventory."""

    def device_groups(self, resource_class, extra_specs):
        """The DeviceGroups a slice guest's extra specs ask for."""
        if not extra_specs:
            return ()
        slice_classes = set(self.tree.classes) | {
            units_class(rc) for rc in self.tree.classes
        }
        own = encoding.slice_request(self.tree, resource_class).groups
        return slice_device_groups(extra_specs, set(own), slice_classes)

    # -- startup -----------------------------------------------------------
    def check_templates(self):
        """Every slice template exists, is readable and compiles."""
        for s in self.tree.slices.values():
            templates.check_slice_template(s.template_file)

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
        check_name(name)
        check_name_free(self.host, name)
        device_groups = self.device_groups(resource_class, extra_specs)
        self.check_offered(device_groups)
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
                check_name_free(self.host, name)
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
            devices_view(binding),
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

    def guests(self):
        """Our guests with their allocations, and every disagreement."""
        usage = claims.tree_usage(self.client, self.providers)
        by_consumer = {}
        for slice_name, consumers in usage.items():
            for consumer, resources in consumers.items():
                by_consumer.setdefault(consumer, {})[slice_name] = resources
        views, problems = [], []
        seen = set()
        for dom, record in self.recorded_guests():
            allocations = by_consumer.get(record.instance_uuid, {})
            seen.add(record.instance_uuid)
            views.append(self.guest_view(dom, record, allocations))
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

    def explain_unavailable(self, resource_class, extra_specs=None):
        """Why each slice of a class, and each device asked for, cannot
        be taken (for rejections)."""
        reasons = self._slice_reasons(resource_class)
        return reasons + self.device_reasons(
            self.device_groups(resource_class, extra_specs)
        )

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


__all__ = ["SliceDriver", "GuestView", "Discrepancy", "NovaSlicesError"]
