"""The dynamic driver: a host without slices, as Nova's libvirt host.

Spawning one guest, all under the host lock so that no two spawns see
the same pCPU, page or device as free:

1. usage is rebuilt from the defined domains' records (libvirt is the
   only state; a restart changes nothing);
2. the fitter places the guest on the host's NUMA cells and picks its
   PCI devices by affinity, or says why it cannot (exit 1).  It is given
   no over-subscription limits (``fit(limits=None)``): in Nova those
   per-cell limits come from the scheduler's ``NUMATopologyFilter``
   (host ratios applied per cell), and the CLI has no scheduler and no
   per-cell ratio option -- its CPU and RAM ratios are the host-wide
   Placement inventory's (``compute.inventory.Ratios``), which the
   Placement claim of step 4 enforces.  The usage it rebuilds does hold
   Nova's per-cell counts (shared vCPUs and memory of every guest), so
   passing ``Limits`` here is a one-line change if that is wanted;
3. the local claim adds that placement to the usage, refusing anything
   taken twice;
4. Placement is claimed for the flavor (VCPU/PCPU/MEMORY_MB/DISK_GB and
   device groups) plus the fitter's devices, in one allocation;
5. devices are bound (mdevs created), the domain XML generated,
   validated against libvirt's schema and the host, defined and started.

Any failure after step 4 deletes the allocation; a spawn killed after it
leaves the allocation to the reconciler (:mod:`nova_slices.compute.journal`).
"""

import dataclasses
import logging
import uuid as uuidlib

from nova_slices import faults
from nova_slices.compute.base import HostDriver
from nova_slices.compute.guests import CLI_OWNER, GuestView, devices_view
from nova_slices.compute.inventory import Ratios, root_inventories
from nova_slices.compute.usage import record_holdings, usage_of
from nova_slices.devices.binding import DeviceBinding
from nova_slices.errors import GuestError, NoFit
from nova_slices.fit import claims as local_claims
from nova_slices.fit.fitter import fit
from nova_slices.fit.model import Rejection
from nova_slices.fit.pci import build_requests, parse_aliases
from nova_slices.host.devices import HostDevices
from nova_slices.placement.flavor_claims import claim_flavor, merge
from nova_slices.placement.request_groups import flavor_request
from nova_slices.request.build import build_request
from nova_slices.slices import locality
from nova_slices.virt import metadata
from nova_slices.virt.guest_xml import GuestDomain, guest_domain

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GuestSpec:
    """One dynamic guest as asked for: what its domain is built from
    besides where the fitter put it and which devices it was bound."""

    name: str
    instance_uuid: str
    request: object  # GuestRequest
    flavor: object  # FlavorRequest: what Placement is asked for
    disk_gb: int
    interfaces: tuple = ()


class DynamicDriver(HostDriver):
    """A host whose guests get generated, NUMA-pinned domain XML."""

    def __init__(self, conf, host, client, sync=None):
        self.aliases = parse_aliases(conf.pci.alias)
        super().__init__(conf, host, client, sync)
        self.pci_devices = HostDevices(
            self.devices.assignable if self.devices else ()
        )

    def _root_inventories(self):
        return root_inventories(
            self.topology,
            self.restrictions,
            Ratios.from_conf(self.conf),
            self.host.instances_disk_gb(),
        )

    # -- usage ---------------------------------------------------------
    def records(self):
        """Our dynamic guests' records, from libvirt."""
        return [r for _, r in self.recorded_guests() if r.dynamic]

    def usage(self):
        """The host's usage, rebuilt from the defined domains."""
        return usage_of(self.topology, self.records(), self.restrictions)

    # -- spawn ---------------------------------------------------------
    def spawn(
        self,
        name,
        vcpus,
        memory_mb,
        disk_gb=0,
        extra_specs=None,
        image_props=None,
        instance_uuid=None,
        interfaces=(),
        owner=CLI_OWNER,
    ):
        """Fit, claim, bind, generate, define and start one guest."""
        self.check_name(name)
        request = build_request(vcpus, memory_mb, extra_specs, image_props)
        flavor = flavor_request(request, disk_gb)
        self.check_offered(flavor.device_groups)
        build_requests(request, self.aliases)  # unknown alias: exit 2
        if request.ignored:
            LOG.warning(
                "%s: ignoring keys nova-slices does not interpret: %s",
                name,
                ", ".join(request.ignored),
            )
        instance_uuid = instance_uuid or str(uuidlib.uuid4())
        with self.host.lock():
            self.check_name_free(name)
            usage = self.usage()
            placement = fit(
                self.topology,
                request,
                usage,
                self.restrictions,
                self.pci_devices,
                self.aliases,
                pack=self.conf.compute.packing_host_numa_cells_allocation_strategy,
            )
            if isinstance(placement, Rejection):
                codes = dict.fromkeys(r.code for r in placement.reasons)
                raise NoFit(
                    f"guest {name} does not fit on this host now: "
                    + ", ".join(codes)
                    + (
                        f" ({placement.reasons[0].message})"
                        if len(placement.reasons) == 1
                        else f" ({len(placement.reasons)} reasons)"
                    ),
                    placement.reasons,
                    value=name,
                )
            # the local claim: refuses anything the usage already holds
            local_claims.claim(
                self.topology,
                usage,
                placement,
                self.restrictions,
                self.pci_devices,
            )
            chosen = (
                self.devices.pci_allocations(placement.pci_devices)
                if self.devices
                else {}
            )
            with self.journalled_claim(
                instance_uuid,
                name,
                lambda: claim_flavor(
                    self.client,
                    flavor,
                    self.providers.root.uuid,
                    instance_uuid,
                    owner.project_id,
                    owner.user_id,
                    extra=chosen,
                    nearness=self._nearness(placement),
                    retries=self.conf.placement.claim_retries,
                ),
            ) as allocations:
                binding = self._bind(
                    allocations, chosen, placement, instance_uuid
                )
                faults.after("bind")
                xml = self.render(
                    GuestSpec(
                        name,
                        instance_uuid,
                        request,
                        flavor,
                        disk_gb,
                        tuple(interfaces),
                    ),
                    placement,
                    binding,
                )
                self.host.define_and_start(xml)
        LOG.info(
            "spawned %s (%s) on cells %s",
            name,
            instance_uuid,
            [c.host_cell for c in placement.cells],
        )
        return GuestView(
            name,
            instance_uuid,
            None,
            None,
            "running",
            allocations,
            devices_view(binding),
            {"vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb},
            tuple(c.to_dict() for c in placement.cells),
        )

    def _nearness(self, placement):
        """Device providers near the guest score higher (same cell 2,
        same socket 1): a vGPU on the guest's own socket is preferred."""
        if not self.devices or not placement.cells:
            return {}
        where = locality.of_cells(
            (c.host_cell for c in placement.cells), self.topology
        )
        return locality.nearness(where, self.devices.sites())

    def _bind(self, allocations, chosen, placement, instance_uuid):
        if self.devices is None:
            return DeviceBinding(tuple(placement.pci_devices))
        # the fitter's devices are bound by address; the rest of the
        # device allocation (resources*: groups) around them
        rest = merge(
            allocations,
            {
                rp: {rc: -n for rc, n in resources.items()}
                for rp, resources in chosen.items()
            },
        )
        return self.devices.bind(
            rest, instance_uuid, chosen=placement.pci_devices
        )

    def render(self, spec, placement, binding):
        """The guest's domain XML with our record, validated twice."""
        mdevs = (
            self.devices.render_devices(binding)["mdev"]
            if self.devices
            else []
        )
        guest = GuestDomain(
            spec.name,
            spec.instance_uuid,
            f"{self.host.instances_path()}/{spec.instance_uuid}/disk",
            spec.interfaces,
            tuple(binding.pci),
            tuple(mdevs),
        )
        request = spec.request
        domain = guest_domain(
            guest, request, placement, self.topology, self.restrictions
        )
        return self.finish_domain(
            domain,
            metadata.GuestRecord(
                spec.name,
                spec.instance_uuid,
                None,
                None,
                pci=tuple(binding.pci),
                mdevs=binding.mdevs + binding.create,
                cells=placement.cells,
                resources=spec.flavor.root,
                flavor=(request.vcpus, request.memory_mb, spec.disk_gb),
            ),
            lambda problems: GuestError(
                f"generated domain XML for {spec.name} does not fit this "
                "host: " + "; ".join(problems),
                code="guest.host-mismatch",
                value=spec.name,
            ),
            self._mdev_uuids(),
        )

    def _mdev_uuids(self):
        if self.devices is None:
            return None
        return {m.uuid for m in self.devices.backend.list()}

    def sample_domain(self):
        """Domain XML of a small pinned guest on the empty host (checked
        against libvirt's schema and the host), or None if it cannot fit."""
        request = build_request(
            2,
            1024,
            {"hw:cpu_policy": "dedicated"}
            if self.restrictions.dedicated_cpus
            else {"hw:numa_nodes": "1"},
        )
        placement = fit(self.topology, request, None, self.restrictions)
        if isinstance(placement, Rejection):
            return None
        return self.render(
            GuestSpec(
                "validate-sample",
                str(uuidlib.uuid4()),
                request,
                flavor_request(request, 1),
                1,
            ),
            placement,
            DeviceBinding(),
        )

    # -- reconciling -----------------------------------------------------
    def holdings(self, record, from_xml):
        """CPUs and pages as the local claim took them (its floating
        vCPUs' pins in the XML are not held)."""
        if not record.dynamic:
            return from_xml
        return record_holdings(record, self.topology, from_xml)

    def expected_allocation(self, record):
        """Exactly the compute node's share recorded at spawn."""
        return {self.providers.root.uuid: dict(record.resources)}

    def where(self, record):
        cells = ",".join(str(c.host_cell) for c in record.cells)
        return f"on host cells {cells}" if cells else "unpinned"

    def check_startup(self):
        """Nothing more: the CPU sets, devices and aliases were checked
        when this driver was built."""

    def validate(self):
        """The CPU sets, devices and aliases were checked when this
        driver was built; a sample pinned guest is rendered and checked
        against libvirt's schema and the host."""
        return {
            "valid": True,
            "slices": [],
            "errors": [],
            "dynamic": self._summary(),
            "sample_domain": self.sample_domain() is not None,
        }

    def _summary(self):
        """What this host offers dynamic guests (for ``validate``)."""
        r = self.restrictions
        all_cpus = self.topology.cpu_ids
        return {
            "cells": len(self.topology.cells),
            "dedicated_cpus": len(r.dedicated_cpus or ()),
            "shared_cpus": len(
                r.shared_cpus
                if r.shared_cpus is not None
                else (() if r.dedicated_cpus else all_cpus)
            ),
            "assignable_pci": [d.address for d in self.pci_devices.pci],
            "aliases": sorted(self.aliases),
            "mdev_types": sorted(
                {
                    i.mdev_type
                    for i in (
                        self.devices.index.values() if self.devices else ()
                    )
                    if i.mdev_type
                }
            ),
        }

    def explain_placement(self, flavor):
        """How much of each class the flavor asks of Placement is free
        (capacity: (total - reserved) x allocation ratio, as Placement
        counts)."""
        wanted = {rc for g in flavor.groups for rc, _ in g.resources}
        desired = self.providers.by_uuid()
        reasons = []
        for view in self.provider_views():
            mine = desired.get(view["uuid"])
            for rc, inv in sorted(view["inventories"].items()):
                if rc not in wanted:
                    continue
                ratio = (
                    mine.inventories[rc].allocation_ratio
                    if mine and rc in mine.inventories
                    else 1.0
                )
                capacity = int((inv["total"] - inv["reserved"]) * ratio)
                reasons.append(
                    {
                        "provider": view["name"],
                        "reason": f"{rc}: {capacity - inv['used']} of "
                        f"{capacity} free",
                    }
                )
        return reasons
