"""A slice template's domain, given the parts another builder owns (pure).

Inside Nova, a slice guest's CPUs, memory, NUMA cells and GPUs are the
operator's template, but its disks, network ports and the devices Nova
allocated (an mdev for ``resources:VGPU``, a VF for a port) come from
Nova's own builders, which know the image, the volumes and Neutron.  So
the template's domain keeps everything except its disks and interfaces,
and takes Nova's disks, interfaces and host devices, and Nova's
``<metadata>`` entries (tools read ``nova:instance`` from there).
"""

import copy

from nova_slices.virt.metadata import metadata_index

#: the <devices> children the other builder owns
ADOPTED = ("disk", "interface", "hostdev")


def adopt_devices(template, other):
    """Mutate ``template`` (a domain element) to hold ``other``'s disks,
    interfaces, host devices and metadata entries; return it.

    A template's own ``<hostdev>`` (its GPUs) stays; one that ``other``
    also attaches is not attached twice.
    """
    devices = template.find("devices")
    if devices is None:
        devices = template.makeelement("devices", {})
        template.append(devices)
    for tag in ("disk", "interface"):
        for el in devices.findall(tag):
            devices.remove(el)
    mine = {_key(h) for h in devices.findall("hostdev")}
    for tag in ADOPTED:
        for el in other.iterfind(f"devices/{tag}"):
            if tag == "hostdev" and _key(el) in mine:
                continue
            devices.append(copy.deepcopy(el))
    theirs = other.find("metadata")
    if theirs is not None and len(theirs):
        metadata = template.find("metadata")
        if metadata is None:
            metadata = template.makeelement("metadata", {})
            template.insert(metadata_index(template), metadata)
        for el in theirs:
            metadata.append(copy.deepcopy(el))
    return template


def _key(hostdev):
    address = hostdev.find("source/address")
    if address is None:
        return None
    return tuple(sorted(address.attrib.items()))
