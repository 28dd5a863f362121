"""Binding a guest's device allocations on this host (the edge).

:func:`nova_slices.devices.binding.plan_binding` decides, purely, which
devices an allocation becomes; this module feeds it what the host has
now (the hostdevs of every defined domain, the kernel's mdevs), creates
the mdevs the plan asks for through the backend, records them, and
recreates the mdevs of defined guests that a host reboot erased.

Callers hold the host lock from :meth:`DeviceManager.bind` until the
domain is defined, so two spawns never see the same device as free.
"""

import contextlib
import dataclasses
import logging

from nova_slices import faults
from nova_slices.devices.binding import (
    BindingError,
    DeviceBinding,
    plan_binding,
)
from nova_slices.devices.providers import device_index
from nova_slices.errors import HostError
from nova_slices.slices.locality import DeviceSite
from nova_slices.virt import metadata
from nova_slices.virt.hostdevs import domain_devices

LOG = logging.getLogger(__name__)

#: libvirt's <hostdev type='mdev' model> for a type's device API
MDEV_MODELS = {
    "vfio-pci": "vfio-pci",
    "vfio-ccw": "vfio-ccw",
    "vfio-ap": "vfio-ap",
}


@dataclasses.dataclass(frozen=True)
class CreatedMdevView:
    uuid: str
    type: str
    parent: str
    created_at: str
    instance_uuid: str | None
    #: the kernel has it now
    present: bool
    #: name of the domain using it, if any
    used_by: str | None

    def to_dict(self):
        return dataclasses.asdict(self)


class DeviceManager:
    def __init__(self, host, root, mdev_types, allowed, backend, registry):
        self.host = host
        self.backend = backend
        self.registry = registry
        self.index = device_index(root, mdev_types, allowed)
        #: the PCI devices [pci] device_spec allows guests to have
        self.assignable = tuple(d for d, _ in allowed)
        self._devices = host.devices().by_address()
        self._models = {
            (d.address, t.name): MDEV_MODELS.get(t.device_api, "vfio-pci")
            for d in self._devices.values()
            for t in d.mdev_types
        }

    @property
    def provider_uuids(self):
        return frozenset(self.index)

    def provider_of(self, address):
        """(provider uuid, resource class) a PCI device is counted on."""
        for rp, info in self.index.items():
            if info.kind == "mdev":
                continue
            if info.address == address or address in info.members:
                return rp, info.resource_class
        raise BindingError(
            f"PCI device {address} is not assignable on this host: no "
            "[pci] device_spec allows it",
            code="binding.not-assignable",
            value=address,
        )

    def pci_allocations(self, addresses):
        """{provider: {class: amount}} for PCI devices chosen by address."""
        out = {}
        for address in addresses:
            rp, rc = self.provider_of(address)
            mine = out.setdefault(rp, {})
            mine[rc] = mine.get(rc, 0) + 1
        return out

    def allocation_of(self, pci, mdevs):
        """{provider: {class: amount}} that bound devices stand for: PCI
        addresses and (uuid, type, parent) mdevs, as a guest records
        them.  Devices no provider counts (a slice template's own) are
        left out."""
        out = {}
        for rp, rc, _ in self._counted(pci, mdevs):
            mine = out.setdefault(rp, {})
            mine[rc] = mine.get(rc, 0) + 1
        return out

    def bound_by_provider(self, binding):
        """{provider: [PCI addresses and mdev uuids]} of a DeviceBinding."""
        out = {}
        for rp, _, device in self._counted(
            binding.pci, binding.mdevs + binding.create
        ):
            out.setdefault(rp, []).append(device)
        return out

    def _counted(self, pci, mdevs):
        """(provider, class, address or uuid) of each bound device a
        provider counts."""
        for address in pci:
            with contextlib.suppress(BindingError):
                rp, rc = self.provider_of(address)
                yield rp, rc, address
        for uuid, mdev_type, parent in mdevs:
            for rp, info in self.index.items():
                if (
                    info.kind == "mdev"
                    and info.address == parent
                    and info.mdev_type == mdev_type
                ):
                    yield rp, info.resource_class, uuid

    def sites(self):
        """{provider: DeviceSite}: where every device provider's device is
        (a VF inventory's PF, an mdev type's parent)."""
        out = {}
        for rp, info in self.index.items():
            device = self._devices.get(info.address)
            out[rp] = DeviceSite(
                info.address,
                device.numa_node if device else None,
                device.socket if device else None,
            )
        return out

    def in_use(self):
        """Devices held by any defined domain, with the domain's name."""
        used = {}
        for dom in self.host.domains():
            held = domain_devices(dom.XMLDesc(0))
            for key in held.pci | held.mdevs:
                used[key] = dom.name()
        return used

    def bind(self, allocations, instance_uuid, chosen=()):
        """DeviceBinding for ``allocations``; creates the mdevs it needs.

        ``chosen`` are PCI devices already picked by address (the
        fitter's, by NUMA affinity); they are bound as they are, and the
        rest of ``allocations`` is bound around them.
        """
        in_use = self.in_use()
        taken = sorted(set(chosen) & set(in_use))
        if taken:
            raise BindingError(
                f"PCI device(s) {taken} are already bound to "
                f"{sorted({in_use[a] for a in taken})}",
                code="binding.device-in-use",
                value=taken,
            )
        if not any(rp in self.index for rp in allocations):
            return DeviceBinding(tuple(chosen))
        binding = plan_binding(
            allocations,
            self.index,
            self.backend.list(),
            set(in_use) | set(chosen),
        )
        binding = dataclasses.replace(binding, pci=tuple(chosen) + binding.pci)
        for uuid, mdev_type, parent in binding.create:
            if self.backend.available(parent, mdev_type) < 1:
                raise BindingError(
                    f"Placement allocated an mdev of type {mdev_type} on "
                    f"{parent}, but the device has no instance of it left "
                    "and no free mdev of the type exists; the provider's "
                    "inventory is stale (run nova-slices sync)",
                    code="binding.mdev-exhausted",
                    value=parent,
                )
            self.backend.create(parent, mdev_type, uuid)
            faults.after("mdev")
            self.registry.add(uuid, mdev_type, parent, instance_uuid)
            LOG.info(
                "created mdev %s (%s on %s) for %s",
                uuid,
                mdev_type,
                parent,
                instance_uuid,
            )
        return binding

    def render_devices(self, binding):
        """The ``devices`` entry of a template's render context."""
        pci = []
        for address in binding.pci:
            d = self._devices.get(address)
            pci.append(
                {
                    "address": address,
                    "vendor_id": d.vendor_id if d else None,
                    "product_id": d.product_id if d else None,
                    "numa_node": d.numa_node if d else None,
                    "dev_type": d.dev_type if d else None,
                    "parent_address": d.parent_address if d else None,
                }
            )
        mdev = [
            {
                "uuid": uuid,
                "type": mdev_type,
                "parent": parent,
                "model": self._models.get((parent, mdev_type), "vfio-pci"),
                "numa_node": getattr(
                    self._devices.get(parent), "numa_node", None
                ),
            }
            for uuid, mdev_type, parent in binding.mdevs + binding.create
        ]
        return {"pci": pci, "mdev": mdev}

    def recreate_missing(self):
        """Create again the mdevs defined guests use but the kernel lacks.

        After a host reboot the kernel has no mdevs at all while libvirt
        still holds domains that name them; each guest's record says of
        which type and on which parent (Nova does the same from its
        database).  Returns the uuids created.
        """
        present = {m.uuid for m in self.backend.list()}
        created = []
        for dom in self.host.domains():
            record = metadata.read(dom.XMLDesc(0))
            if record is None:
                continue
            for uuid, mdev_type, parent in record.mdevs:
                if uuid in present:
                    continue
                try:
                    self.backend.create(parent, mdev_type, uuid)
                except HostError as exc:
                    raise HostError(
                        f"guest {record.name} needs mdev {uuid} "
                        f"({mdev_type} on {parent}), which the kernel lost, "
                        f"and it could not be recreated: {exc}",
                        code="host.mdev-recreate-failed",
                        value=uuid,
                    ) from None
                self.registry.add(
                    uuid, mdev_type, parent, record.instance_uuid
                )
                present.add(uuid)
                created.append(uuid)
        return created

    def created(self):
        """Every mdev we created, whether the kernel has it, who uses it."""
        present = {m.uuid for m in self.backend.list()}
        used = self.in_use()
        return [
            CreatedMdevView(
                e.uuid,
                e.type,
                e.parent,
                e.created_at,
                e.instance_uuid,
                e.uuid in present,
                used.get(e.uuid),
            )
            for e in self.registry.entries()
        ]


__all__ = ["DeviceManager", "CreatedMdevView"]
