"""Typed options, declared with oslo.config.

Nothing here uses a global ConfigOpts: callers build one with
:func:`make_conf` so that tests, the CLI and nova-compute each own theirs.
"""

from oslo_config import cfg
from oslo_log import log as logging

from nova_slices.conf import (
    compute,
    default,
    devices,
    libvirt,
    pci,
    placement,
)

MODULES = (default, compute, devices, libvirt, pci, placement)


def register_opts(conf):
    for module in MODULES:
        module.register_opts(conf)


def make_conf(args=(), default_config_files=None, register_log=True):
    """Return a parsed ConfigOpts for ``args`` (``--config-file`` etc.).

    ``default_config_files`` is used when ``args`` names no config file.
    """
    conf = cfg.ConfigOpts()
    register_opts(conf)
    if register_log:
        logging.register_options(conf)
    conf(
        list(args),
        project="nova-slices",
        prog="nova-slices",
        default_config_files=default_config_files,
    )
    # groups named after option values exist only once those are read
    devices.register_dynamic_opts(conf)
    return conf
