"""This project's options on Nova's CONF.

Only the options Nova does not have are registered (``[libvirt]
slice_spec`` and ``slice_template_dir``); everything else the core reads
-- ``[devices] enabled_mdev_types`` and ``[mdev_*]``, ``[pci]
device_spec``/``alias``, ``[compute] cpu_*_set``, ``state_path`` -- is
Nova's own option, read from Nova's CONF and never registered twice.
"""

from nova_slices.conf import libvirt


def register(conf):
    """Register on ``conf`` (Nova's CONF); idempotent."""
    libvirt.register_slice_opts(conf)
