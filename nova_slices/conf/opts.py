"""Entry point for ``oslo-config-generator`` (namespace ``nova_slices``)."""

from nova_slices.conf import (
    compute,
    default,
    devices,
    libvirt,
    pci,
    placement,
)


def list_opts():
    groups = {}
    for module in (default, compute, devices, libvirt, pci, placement):
        for group, opts in module.list_opts().items():
            groups.setdefault(group, []).extend(opts)
    return [(group, opts) for group, opts in groups.items()]
