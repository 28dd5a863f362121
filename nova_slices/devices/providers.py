"""Device resource providers: one per mdev parent, one per PCI PF/device.

Pure: the resolved configuration and the host's devices in, Provider
values out, added under the compute node by
:func:`nova_slices.provider_tree.build_provider_tree`.

* mdev: one provider per parent device, named like libvirt's node device
  (``<host>_pci_0000_84_00_0``), with the type's class and total =
  available instances + mdevs of that type already created (capped by
  ``max_instances``), and a ``CUSTOM_MDEV_<TYPE>`` trait naming the type.
* PCI: one provider per assignable standalone device or PF (class total
  1), and one per PF whose VFs are assignable (class total = VFs); the
  spec's traits.  A PF and its own VFs cannot both be assignable, and a
  device cannot be both an mdev parent and passed through: both refused.
"""

import re
import uuid

from nova_slices.errors import ConfigError
from nova_slices.host.devices import TYPE_VF
from nova_slices.provider_tree import NAMESPACE, Inventory, Provider


def provider_name(hostname, address):
    return f"{hostname}_pci_" + re.sub(r"[:.]", "_", address)


def device_provider_uuid(root, address):
    return str(uuid.uuid5(NAMESPACE, f"{root}/device/{address}"))


def mdev_trait(mdev_type):
    return "CUSTOM_MDEV_" + re.sub(r"[^A-Z0-9_]", "_", mdev_type.upper())


def mdev_providers(hostname, root, mdev_types, devices):
    by_address = devices.by_address()
    out = []
    for t in mdev_types:
        for address in t.parents:
            device = by_address[address]
            offered = next(
                (
                    m.available_instances
                    for m in device.mdev_types
                    if m.name == t.type
                ),
                0,
            )
            existing = sum(
                1
                for m in devices.mdevs
                if m.parent_address == address and m.type == t.type
            )
            total = offered + existing
            if t.max_instances is not None:
                total = min(total, t.max_instances)
            out.append(
                Provider(
                    provider_name(hostname, address),
                    device_provider_uuid(root, address),
                    root,
                    {t.resource_class: Inventory(total=total)},
                    frozenset({mdev_trait(t.type)}),
                )
            )
    return out


def pci_providers(hostname, root, assignable, mdev_types=()):
    parents = {a for t in mdev_types for a in t.parents}
    whole, vfs_of = [], {}
    for device, spec in assignable:
        if device.address in parents:
            raise ConfigError(
                f"[pci] device_spec {spec.raw}: {device.address} is also an "
                "mdev parent in [devices]; a device is either passed "
                "through or split into mdevs",
                code="config.device-mdev-and-pci",
                key="[pci] device_spec",
                value=device.address,
            )
        if device.dev_type == TYPE_VF and device.parent_address:
            vfs_of.setdefault(device.parent_address, []).append((device, spec))
        else:
            whole.append((device, spec))
    out = []
    for device, spec in whole:
        if device.address in vfs_of:
            raise ConfigError(
                f"[pci] device_spec: PF {device.address} and its VFs are "
                "both assignable; allow the PF or its VFs, not both",
                code="config.pci-pf-and-vfs",
                key="[pci] device_spec",
                value=device.address,
            )
        out.append(
            Provider(
                provider_name(hostname, device.address),
                device_provider_uuid(root, device.address),
                root,
                {spec.class_for(device): Inventory(total=1)},
                frozenset(spec.traits),
            )
        )
    for pf, members in sorted(vfs_of.items()):
        inventories = {}
        traits = set()
        for device, spec in members:
            rc = spec.class_for(device)
            inventories[rc] = inventories.get(rc, 0) + 1
            traits.update(spec.traits)
        out.append(
            Provider(
                provider_name(hostname, pf),
                device_provider_uuid(root, pf),
                root,
                {
                    rc: Inventory(total=n)
                    for rc, n in sorted(inventories.items())
                },
                frozenset(traits),
            )
        )
    return out


def device_index(root, mdev_types, assignable):
    """{provider uuid: DeviceProviderInfo} for binding allocations."""
    from nova_slices.devices.binding import DeviceProviderInfo

    index = {}
    for t in mdev_types:
        for address in t.parents:
            index[device_provider_uuid(root, address)] = DeviceProviderInfo(
                "mdev", address, t.resource_class, t.type
            )
    vfs = {}
    for device, spec in assignable:
        if device.dev_type == TYPE_VF and device.parent_address:
            vfs.setdefault(device.parent_address, []).append(
                (device.address, spec.class_for(device))
            )
        else:
            index[device_provider_uuid(root, device.address)] = (
                DeviceProviderInfo(
                    "pci", device.address, spec.class_for(device)
                )
            )
    for pf, members in vfs.items():
        index[device_provider_uuid(root, pf)] = DeviceProviderInfo(
            "vfs",
            pf,
            members[0][1],
            None,
            tuple(sorted(a for a, _ in members)),
        )
    return index
