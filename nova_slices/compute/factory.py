"""Which strategy a host runs: slices when it has any, dynamic otherwise.

The one place both shells (the ``nova-slices`` command and the Nova
driver) ask, so they can never disagree about a host.
"""

from nova_slices.compute.dynamic import DynamicDriver
from nova_slices.compute.slices import SliceDriver
from nova_slices.slices.tree import load_tree


def has_slices(conf):
    """Whether ``[libvirt] slice_spec`` carves this host into slices."""
    return bool(load_tree(conf).slices)


def open_driver(conf, host, client=None, sync=None):
    """The host's driver; ``client`` None for what needs no Placement
    (``validate``, rendering)."""
    cls = SliceDriver if has_slices(conf) else DynamicDriver
    return cls(conf, host, client, sync)
