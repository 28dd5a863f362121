"""The slice strategy: a host carved into slices by operator templates.

Where the pure pieces (slice tree, unit-chain requests, template
rendering) meet the edges (libvirt, Placement) on a slice host.  A guest
takes one slice (and any devices asked for next to it) in one Placement
allocation, and its domain is the slice's template rendered.
"""

import functools
import logging
import os
import uuid as uuidlib

from lxml import etree

from nova_slices import faults
from nova_slices.compute.base import HostDriver
from nova_slices.compute.guests import CLI_OWNER, GuestView, devices_view
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.devices.providers import device_index
from nova_slices.errors import ConfigError, NovaSlicesError, TemplateError
from nova_slices.host.restrictions import load_restrictions
from nova_slices.placement import claims
from nova_slices.placement.request_groups import slice_device_request
from nova_slices.slices import encoding, locality
from nova_slices.slices.offered import check_offered_devices, device_offers
from nova_slices.slices.overlap import check_slice_overlaps
from nova_slices.slices.tree import HOST_UNITS, units_class
from nova_slices.virt import metadata, templates
from nova_slices.virt.holdings import domain_holdings

LOG = logging.getLogger(__name__)


class SliceDriver(HostDriver):
    """A host carved into slices: operator templates; the root offers
    only one unit per leaf slice (HOST_UNITS)."""

    def device_groups(self, resource_class, extra_specs):
        """The DeviceGroups a slice guest's extra specs ask for."""
        return self.device_request(resource_class, extra_specs)[0]

    def device_request(self, resource_class, extra_specs):
        """(DeviceGroups, PCI NUMA affinity policy) of a slice guest's
        extra specs."""
        if not extra_specs:
            return (), None
        slice_classes = set(self.tree.classes) | {
            units_class(rc) for rc in self.tree.classes
        }
        own = encoding.slice_request(self.tree, resource_class).groups
        # the unsuffixed group is shared with devices (see query_params)
        reserved = set(own) - {""}
        return slice_device_request(extra_specs, reserved, slice_classes)

    def slice_locality(self, slice_name):
        """The host cells and sockets of a slice, from the sample of its
        template that start-up already rendered."""
        domain, error = self._samples[slice_name]
        if domain is None:
            raise error
        return locality.slice_locality(domain, self.topology)

    def device_locality(self, resource_class, policy):
        """The DeviceLocality a claim of ``resource_class`` follows."""
        return locality.DeviceLocality(
            {
                name: self.slice_locality(name)
                for name in self.tree.classes[resource_class].slices
            },
            self.devices.sites(),
            self.topology.cells_without_socket,
            policy,
        )

    # -- startup -----------------------------------------------------------
    def check_templates(self):
        """Every slice template exists, is readable and compiles."""
        for s in self.tree.slices.values():
            templates.check_slice_template(s.template_file)

    @functools.cached_property
    def _samples(self):
        """{slice: (domain or None, error or None)}: every slice's template
        rendered once per driver for a sample guest and checked against
        libvirt's schema and this host as a spawn would.  The domain is
        kept when only the check failed (its pins and cells still say
        where the slice is); None when it did not render."""
        samples = {}
        for name in self.tree.slices:
            instance_uuid = str(uuidlib.uuid4())
            domain = None
            try:
                domain = self.render_template(
                    f"validate-{name}", instance_uuid, name
                )
                self.finish_slice_domain(
                    domain, f"validate-{name}", instance_uuid, name
                )
            except NovaSlicesError as exc:
                samples[name] = (domain, exc)
                continue
            samples[name] = (domain, None)
        return samples

    def sample_holdings(self):
        """({slice: Holdings}, [errors]): what every slice's template
        holds (:attr:`_samples`); a template that fails is left out and
        its error returned instead."""
        holdings, errors = {}, []
        for name, (domain, error) in self._samples.items():
            if error is None:
                holdings[name] = domain_holdings(domain)
            else:
                errors.append(error)
        return holdings, errors

    def _sharing_problems(self, holdings, restrictions):
        """What slices that may run together share with each other
        (:mod:`~nova_slices.slices.overlap`) or with the devices Placement
        hands out next to them (:mod:`~nova_slices.slices.offered`)."""
        problems = check_slice_overlaps(
            self.tree, holdings, self.topology, restrictions
        )
        if self.devices is not None:
            index = self.devices.index
        elif self.conf.pci.device_spec:
            # inside Nova, whose PCI tracker hands out [pci] device_spec's
            # devices itself (its mdevs are not checked here)
            index = device_index(
                self.host.hostname,
                (),
                assignable(
                    parse_device_specs(self.conf.pci.device_spec),
                    self.host.devices(),
                ),
            )
        else:
            return problems
        offers = device_offers(index, self.host.devices().by_address())
        return problems + check_offered_devices(holdings, offers)

    def check_startup(self):
        """Refuse a host whose slices overlap, before a command gives it
        away (``Runtime.placing_driver``, nova-compute's ``init_host``).

        Every template is rendered and checked as ``validate`` does
        (about 0.15 s for the shipped eleven).  One that fails is left to
        ``validate`` and to its own spawn, which report it: no guest can
        be defined from it, so it double-books nothing.  So are problems
        with the host's CPU sets and reservations (the page check then
        counts no reservation).
        """
        holdings, _ = self.sample_holdings()
        try:
            restrictions = self.restrictions
        except NovaSlicesError:
            restrictions = None
        problems = self._sharing_problems(holdings, restrictions)
        if problems:
            first, more = problems[0], len(problems) - 1
            raise ConfigError(
                first.message
                + (
                    f" ({more} more overlap problem(s): run `nova-slices "
                    "validate` to see them all)"
                    if more
                    else ""
                ),
                code=first.code,
                key=first.key,
                value=first.value,
            )

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
        owner=CLI_OWNER,
    ):
        """Claim a slice (and devices), bind, render, define and start.

        The claim is one Placement allocation; binding, rendering and
        defining happen under the host lock, so a device seen free is
        still free when the domain holding it is defined.  Any failure
        releases the allocation; a spawn killed half-way leaves it to the
        reconciler (:mod:`nova_slices.compute.journal`).
        """
        instance_uuid = instance_uuid or str(uuidlib.uuid4())
        self.check_name(name)
        self.check_name_free(name)
        device_groups, policy = self.device_request(
            resource_class, extra_specs
        )
        self.check_offered(device_groups)
        near = (
            self.device_locality(resource_class, policy)
            if device_groups and self.devices
            else None
        )
        with self.journalled_claim(
            instance_uuid,
            name,
            lambda: claims.claim_slice(
                self.client,
                self.tree,
                self.providers,
                resource_class,
                instance_uuid,
                owner.project_id,
                owner.user_id,
                retries=self.conf.placement.claim_retries,
                devices=device_groups,
                locality=near,
            ),
        ) as claim:
            slice_name = encoding.slice_from_allocation(
                self.tree,
                claim.allocations,
                self.providers.slice_of_provider(),
                self.devices.provider_uuids if self.devices else frozenset(),
                root=self.providers.root.uuid,
            )
            with self.host.lock():
                self.check_name_free(name)
                binding = (
                    self.devices.bind(claim.allocations, instance_uuid)
                    if self.devices
                    else None
                )
                faults.after("bind")
                xml = self.render(
                    name,
                    instance_uuid,
                    slice_name,
                    binding,
                    flavor=flavor,
                    interfaces=interfaces,
                    user_metadata=user_metadata or {},
                )
                self.host.define_and_start(xml)
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
            device_locality=(
                None
                if claim.device_locality is None
                else locality.with_bound(
                    claim.device_locality,
                    self.devices.bound_by_provider(binding),
                )
            ),
        )

    def render(self, name, instance_uuid, slice_name, binding=None, **context):
        """Domain XML for a guest on ``slice_name``, validated;
        ``context`` is :meth:`render_template`'s (flavor, interfaces,
        user_metadata)."""
        domain = self.render_template(
            name, instance_uuid, slice_name, binding=binding, **context
        )
        return self.finish_slice_domain(
            domain, name, instance_uuid, slice_name, binding
        )

    def render_template(
        self,
        name,
        instance_uuid,
        slice_name,
        flavor=None,
        interfaces=(),
        user_metadata=None,
        binding=None,
    ):
        """The slice's template rendered for one guest: a domain element
        naming the guest (not yet checked against the schema or host)."""
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
        return domain

    def finish_slice_domain(
        self, domain, name, instance_uuid, slice_name, binding=None
    ):
        """Our record injected, schema and host checked: XML to define."""
        s = self.tree.slices[slice_name]
        return self.finish_domain(
            domain,
            metadata.GuestRecord(
                name,
                instance_uuid,
                s.name,
                s.resource_class,
                pci=binding.pci if binding else (),
                mdevs=(binding.mdevs + binding.create) if binding else (),
            ),
            lambda problems: TemplateError(
                f"slice template {s.template_file!r} does not fit this "
                "host: " + "; ".join(problems),
                code="template.host-mismatch",
                key="template_file",
                value=s.template_file,
            ),
        )

    # -- reconciling ---------------------------------------------------------
    def expected_allocation(self, record):
        """The slice's exact share of the unit chain, per provider."""
        if record.slice_name not in self.tree.slices:
            return {}
        provider = self.providers.provider_of_slice()
        leaves = self.tree.slices[record.slice_name].leaves
        return {
            self.providers.root.uuid: {HOST_UNITS: leaves},
            **{
                provider[name]: resources
                for name, resources in encoding.slice_allocation(
                    self.tree, record.slice_name
                ).items()
            },
        }

    def where(self, record):
        return f"on slice {record.slice_name}"

    def shown_allocations(self, allocations):
        """{slice name: resources}: the slice providers, by name."""
        slice_of = self.providers.slice_of_provider()
        return {
            slice_of[rp]: resources
            for rp, resources in allocations.items()
            if rp in slice_of
        }

    def slice_usage(self):
        """{slice name: {consumer: resources}} for every slice."""
        usage = {name: {} for name in self.tree.slices}
        for consumer, held in self.allocations_by_consumer().items():
            for name, resources in self.shown_allocations(held).items():
                usage[name][consumer] = resources
        return usage

    def validate(self):
        """Every slice template rendered for this host and checked, and
        the slices checked not to overlap where they may run together
        (:mod:`nova_slices.slices.overlap`)."""
        errors = []
        restrictions = None
        try:
            restrictions = load_restrictions(self.conf, self.topology)
        except NovaSlicesError as exc:
            errors.append(exc)
        holdings, failed = self.sample_holdings()
        errors += failed
        errors += self._sharing_problems(holdings, restrictions)
        return {
            "valid": not errors,
            "slices": list(holdings),
            "errors": errors,
        }

    def explain_unavailable(self, resource_class, extra_specs=None):
        """Why each slice of a class, and each device asked for, cannot
        be taken (for rejections)."""
        reasons = self._slice_reasons(resource_class)
        return reasons + self.device_reasons(
            self.device_groups(resource_class, extra_specs)
        )

    def _slice_reasons(self, resource_class):
        usage = self.slice_usage()
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
