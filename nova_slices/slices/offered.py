"""A slice template must not hold a device Placement also hands out (pure).

Next to its slices a host may offer devices of its own through Placement
(``[pci] device_spec`` VFs and PCI devices, ``[mdev_<type>]`` vGPUs).
Placement counts those on device providers and knows nothing of the
templates, so a GPU that a template names and that ``[pci]`` also
offers is given twice: once as part of a slice, once as a device next to
another slice.  The same holds for a device tied to an offered one: a
slice holding a PF takes the VFs offered under it, and one holding a
parent GPU takes the mdevs created on it.

``slice.device-also-offered`` names the slice, the device its template
holds, the device Placement offers and the option offering it; the
operator removes one of the two.
"""

from nova_slices.errors import ConfigError
from nova_slices.slices.spec import OPTION


def device_offers(index, devices):
    """{PCI address: (offered address, resource class, option)} of every
    device that device providers hand out, and of every device tied to
    one (its PF, its VFs).

    ``index`` is the device providers' {uuid: DeviceProviderInfo};
    ``devices`` the host's {address: PciDevice}.
    """
    offers = {}
    for info in index.values():
        if info.kind == "mdev":
            option = f"[mdev_{info.mdev_type}] device_addresses"
            addresses = (info.address,)
        else:
            option = "[pci] device_spec"
            addresses = info.members or (info.address,)
        for address in addresses:
            offer = (address, info.resource_class, option)
            offers.setdefault(address, offer)
            device = devices.get(address)
            tied = (
                (device.parent_address, *device.vf_addresses) if device else ()
            )
            for other in tied:
                if other:
                    offers.setdefault(other, offer)
    return offers


def check_offered_devices(holdings_by_slice, offers):
    """One ConfigError per (slice, device) a template holds that a device
    provider also hands out, in configuration order."""
    problems = []
    for name, held in holdings_by_slice.items():
        for address in sorted(held.pci):
            if address not in offers:
                continue
            offered, resource_class, option = offers[address]
            via = (
                ""
                if offered == address
                else f" through {offered}, which is tied to it"
            )
            problems.append(
                ConfigError(
                    f"slice {name}'s template holds PCI device {address}, "
                    f"which Placement also hands out as {resource_class}"
                    f"{via} ({option}): a slice guest and a guest given "
                    "that device would share it. Remove the device from "
                    f"{option} or from the slice's template.",
                    code="slice.device-also-offered",
                    key=OPTION,
                    value={
                        "slices": [name],
                        "device": address,
                        "offered": offered,
                        "resource_class": resource_class,
                        "option": option,
                    },
                )
            )
    return tuple(problems)
