"""Which concrete devices a guest's device allocations become (pure).

Placement allocates *amounts* on device providers; the guest needs
*devices*: for an mdev provider, mdevs of the type on that parent (free
existing ones first, new ones for the rest); for a PF provider, that
many of its VFs; for a standalone device, the device.  "Free" excludes
everything bound to a defined domain, so a device is never handed out
twice; the caller rebuilds that set from libvirt after a restart.
"""

import dataclasses
import uuid as uuidlib

from nova_slices.errors import NovaSlicesError


class BindingError(NovaSlicesError):
    exit_status = 1
    code = "binding.failed"


@dataclasses.dataclass(frozen=True)
class DeviceProviderInfo:
    kind: str  # "mdev", "pci" or "vfs"
    address: str  # parent, device or PF
    resource_class: str
    mdev_type: str | None = None
    #: the VFs a "vfs" provider stands for
    members: tuple = ()


@dataclasses.dataclass(frozen=True)
class DeviceBinding:
    pci: tuple = ()  # addresses
    #: (uuid, type, parent) of existing mdevs to use
    mdevs: tuple = ()
    #: (uuid, type, parent) of mdevs to create first
    create: tuple = ()

    @property
    def mdev_uuids(self):
        return tuple(m[0] for m in self.mdevs + self.create)


def plan_binding(
    allocations,
    index,
    host_mdevs,
    in_use,
    new_uuid=lambda: str(uuidlib.uuid4()),
):
    """DeviceBinding for ``allocations`` ({provider: {class: amount}})."""
    pci, mdevs, create = [], [], []
    taken = set(in_use)
    for rp, resources in sorted(allocations.items()):
        info = index.get(rp)
        if info is None:
            continue
        amount = resources.get(info.resource_class, 0)
        if not amount:
            continue
        if info.kind == "mdev":
            free = sorted(
                m.uuid
                for m in host_mdevs
                if m.parent_address == info.address
                and m.type == info.mdev_type
                and m.uuid not in taken
            )
            use = free[:amount]
            taken.update(use)
            mdevs += [(u, info.mdev_type, info.address) for u in use]
            for _ in range(amount - len(use)):
                create.append((new_uuid(), info.mdev_type, info.address))
        elif info.kind == "vfs":
            free = [a for a in info.members if a not in taken]
            if len(free) < amount:
                raise BindingError(
                    f"allocation wants {amount} VF(s) of {info.address}; "
                    f"only {len(free)} are free on this host",
                    code="binding.not-enough-vfs",
                    value=info.address,
                )
            pci += free[:amount]
            taken.update(free[:amount])
        else:
            if amount != 1 or info.address in taken:
                raise BindingError(
                    f"PCI device {info.address} is already bound to a guest"
                    if info.address in taken
                    else f"allocation wants {amount} of device {info.address}",
                    code="binding.device-in-use",
                    value=info.address,
                )
            pci.append(info.address)
            taken.add(info.address)
    return DeviceBinding(tuple(pci), tuple(mdevs), tuple(create))
