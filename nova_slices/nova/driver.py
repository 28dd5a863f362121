"""``LibvirtSlicesDriver``: Nova's libvirt driver on a host carved in slices.

nova-compute loads it as ``compute_driver =
slices_ext.driver.LibvirtSlicesDriver``.  With no ``[libvirt] slice_spec``
it is Nova's ``LibvirtDriver``, whose claims also honour
``hw:numa_node.N``.  On a slice host it drives the
same core as the ``nova-slices`` command
(:class:`nova_slices.compute.slices.SliceDriver`):

* ``init_host`` runs ``nova-slices validate``'s checks against the real
  host and refuses to start on any error, naming its code;
* ``update_provider_tree`` reports the slice providers under the compute
  node, and on the root only DISK_GB (the instances' disks, as Nova
  reports it) and HOST_UNITS (one per leaf slice, which every slice
  flavor asks for so that its candidates touch the root, the only ones
  Nova's scheduler gives a host);
* the resource tracker's claim honours ``hw:numa_node.N`` on any host
  (:mod:`nova_slices.nova.claims`);
* ``_get_guest_xml`` -- every path that (re)writes a domain: spawn, hard
  reboot, rescue, resume, migration -- reads the instance's slice back
  from its Placement allocation, checks that the allocation is a chain
  of that slice, renders the slice's template and gives it Nova's disks,
  ports and allocated devices.

Devices (vGPU mdevs, PCI) stay Nova's: its own code reports and binds
them, so nothing is reported twice and existing flavors keep working.
"""

import copy

import nova.conf
from lxml import etree
from nova import exception
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_slices.compute import factory
from nova_slices.compute.slices import SliceDriver
from nova_slices.errors import NovaSlicesError
from nova_slices.nova import claims as numa_claims
from nova_slices.nova import conf as slices_conf
from nova_slices.nova.host import NovaHost
from nova_slices.provider_tree import build_provider_tree, slice_provider_name
from nova_slices.slices import encoding
from nova_slices.virt.adopt import adopt_devices

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
slices_conf.register(CONF)

#: what a slice host's root does not offer: the slices own CPUs and memory
NOT_ON_SLICE_ROOT = ("VCPU", "PCPU", "MEMORY_MB")


class SliceHostInvalid(exception.NovaException):
    """The host's slice configuration does not hold for this host."""

    msg_fmt = "nova-slices refuses to start: %(errors)s"

    def __init__(self, errors):
        self.codes = [e.code for e in errors]
        super().__init__(
            errors="; ".join(f"[{e.code}] {e.message}" for e in errors)
        )


class SliceNotAllocated(exception.NovaException):
    """The instance's allocation holds no (whole) slice of this host."""

    msg_fmt = "instance %(instance)s: %(reason)s"


class LibvirtSlicesDriver(libvirt_driver.LibvirtDriver):
    #: the compute claim places ``hw:numa_node.N`` cells on their host
    #: cells (:mod:`nova_slices.nova.claims`)
    honours_numa_pins = True

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        numa_claims.install()
        #: the core's slice strategy, on a slice host (set by init_host)
        self.slices = None

    # -- start-up ------------------------------------------------------
    def init_host(self, host):
        super().init_host(host)
        try:
            if not factory.has_slices(CONF):
                return
            core = SliceDriver(
                CONF, NovaHost(self._host, host), None, own_devices=False
            )
            report = core.validate()
        except NovaSlicesError as exc:
            raise SliceHostInvalid([exc]) from None
        if report["errors"]:
            raise SliceHostInvalid(report["errors"])
        self.slices = core
        LOG.info(
            "nova-slices: %d slices of %s valid on this host",
            len(report["slices"]),
            ", ".join(sorted(core.tree.classes)),
        )

    # -- Placement -----------------------------------------------------
    def slice_providers(self, nodename, root_uuid):
        """The desired provider tree (pure) for the compute node."""
        return build_provider_tree(nodename, self.slices.tree, root_uuid)

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        super().update_provider_tree(provider_tree, nodename, allocations)
        if self.slices is None:
            return
        root = provider_tree.data(nodename)
        desired = self.slice_providers(nodename, root.uuid)
        inventory = {
            rc: inv
            for rc, inv in root.inventory.items()
            if rc not in NOT_ON_SLICE_ROOT
        }
        for rc, inv in desired.root.inventories.items():
            inventory[rc] = inv.to_placement()
        provider_tree.update_inventory(nodename, inventory)
        wanted = set()
        for p in desired.providers[1:]:
            wanted.add(p.uuid)
            if not provider_tree.exists(p.uuid):
                provider_tree.new_child(p.name, p.parent_uuid, uuid=p.uuid)
            provider_tree.update_inventory(
                p.uuid,
                {rc: i.to_placement() for rc, i in p.inventories.items()},
            )
        # slices no longer configured go, children first
        prefix = slice_provider_name(nodename, "")
        stale = [
            u
            for u in provider_tree.get_provider_uuids(nodename)
            if u not in wanted
            and provider_tree.data(u).name.startswith(prefix)
        ]
        for uuid in reversed(stale):
            provider_tree.remove(uuid)
        self.provider_tree = copy.deepcopy(provider_tree)

    # -- domains -------------------------------------------------------
    def _get_guest_xml(
        self,
        context,
        instance,
        network_info,
        disk_info,
        image_meta,
        rescue=None,
        block_device_info=None,
        mdevs=None,
        accel_info=None,
        share_info=None,
        old_guest=None,
    ):
        xml = super()._get_guest_xml(
            context,
            instance,
            network_info,
            disk_info,
            image_meta,
            rescue=rescue,
            block_device_info=block_device_info,
            mdevs=mdevs,
            accel_info=accel_info,
            share_info=share_info,
            old_guest=old_guest,
        )
        if self.slices is None:
            return xml
        slice_name = self.slice_of(context, instance)
        flavor = instance.flavor
        domain = self.slices.render_template(
            instance.name,
            instance.uuid,
            slice_name,
            flavor={
                "name": flavor.name,
                "vcpus": flavor.vcpus,
                "memory_mb": flavor.memory_mb,
                "extra_specs": dict(flavor.extra_specs),
            },
        )
        adopt_devices(domain, etree.fromstring(xml.encode()))
        try:
            return self.slices.finish_slice_domain(
                domain, instance.name, instance.uuid, slice_name
            )
        except NovaSlicesError as exc:
            raise SliceNotAllocated(
                instance=instance.uuid, reason=f"[{exc.code}] {exc.message}"
            ) from None

    # -- moves ---------------------------------------------------------
    def check_can_live_migrate_source(
        self, context, instance, dest_check_data, block_device_info=None
    ):
        """A slice guest's domain pins the source's GPUs and CPUs, and a
        live migration carries that domain over as it is: refused before
        the guest moves (cold migration and resize re-render the template
        for the slice the destination allocated)."""
        if self.slices is not None:
            raise exception.MigrationPreCheckError(
                reason="nova-slices: a slice guest cannot be live-migrated "
                "(its domain holds this host's GPUs and pinned CPUs); "
                "cold-migrate or resize it instead"
            )
        return super().check_can_live_migrate_source(
            context, instance, dest_check_data, block_device_info
        )

    def slice_of(self, context, instance):
        """The slice the instance's allocation holds, checked to be a
        whole chain of the class its flavor names."""
        held = self.virtapi.reportclient.get_allocations_for_consumer(
            context, instance.uuid
        )
        allocations = {rp: a["resources"] for rp, a in held.items()}
        # this host's node: during an evacuation instance.node still
        # names the host the instance comes from
        nodename = self._host.get_hostname()
        root = self.provider_tree.data(nodename).uuid
        desired = self.slice_providers(nodename, root)
        slice_of = desired.slice_of_provider()
        others = frozenset(allocations) - frozenset(slice_of) - {root}
        try:
            name = encoding.slice_from_allocation(
                self.slices.tree, allocations, slice_of, others, root=root
            )
        except NovaSlicesError as exc:
            raise SliceNotAllocated(
                instance=instance.uuid,
                reason=f"[{exc.code}] {exc.message}; only flavors from "
                "`nova-slices flavor-specs` land on a slice host",
            ) from None
        wanted = instance.flavor.extra_specs.get(encoding.FLAVOR_CLASS_KEY)
        got = self.slices.tree.slices[name].resource_class
        if wanted != got:
            raise SliceNotAllocated(
                instance=instance.uuid,
                reason=f"its flavor asks for {encoding.FLAVOR_CLASS_KEY}="
                f"{wanted} but its allocation holds slice {name} ({got})",
            )
        return name
