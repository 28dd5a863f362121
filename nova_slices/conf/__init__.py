"""Typed options, declared with oslo.config.

Nothing here uses a global ConfigOpts: callers build one with
:func:`make_conf` so that tests, the CLI and nova-compute each own theirs.
"""

import logging

from oslo_config import cfg

from nova_slices.conf import (
    check,
    compute,
    default,
    devices,
    libvirt,
    logging_opts,
    pci,
    placement,
)

MODULES = (default, compute, devices, libvirt, pci, placement)
LOG = logging.getLogger(__name__)


def register_opts(conf, keystoneauth=True):
    """Register our options; keystoneauth's ``[placement]`` ones unless
    ``keystoneauth`` is false (see :mod:`nova_slices.conf.placement`)."""
    for module in MODULES:
        if module is placement:
            module.register_opts(conf, keystoneauth=keystoneauth)
        else:
            module.register_opts(conf)


def known_opts(conf):
    """``{(group, name): Opt}`` of the options we declare (DEFAULT group
    as ``DEFAULT``), the per-type mdev groups of ``conf`` included."""
    out = {}
    groups = [
        m.list_opts(placement.has_keystoneauth_opts(conf))
        if m is placement
        else m.list_opts()
        for m in MODULES
    ]
    groups.append(devices.dynamic_list_opts(conf))
    for listing in groups:
        for group, opts in listing.items():
            name = getattr(group, "name", group)
            for opt in opts:
                out[(name, opt.dest)] = opt
    return out


def make_conf(args=(), default_config_files=None, register_log=True):
    """Return a parsed ConfigOpts for ``args`` (``--config-file`` etc.).

    ``default_config_files`` is used when ``args`` names no config file.
    Every value is read and checked here, so a bad one is a ConfigError
    naming its option now, not an error wherever it is first used.
    """
    conf = cfg.ConfigOpts()
    # keystoneauth's [placement] options only if written (or when
    # Placement is opened): importing keystoneauth is most of a start-up
    register_opts(conf, keystoneauth=False)
    if register_log:
        # oslo.log's options, not its logger: see logging_opts
        logging_opts.register_options(conf)
    check.parse(
        conf,
        list(args),
        project="nova-slices",
        prog="nova-slices",
        default_config_files=default_config_files,
    )
    if placement.sets_keystoneauth_opts(check.raw_values(conf)):
        placement.ensure_keystoneauth_opts(conf)
    check.check_values(conf, known_opts(conf))
    # groups named after option values exist only once those are read
    dynamic = devices.register_dynamic_opts(conf)
    known = known_opts(conf)
    check.check_values(conf, known, groups=dynamic)
    check.check_legacy_names(conf, known)
    for message in devices.ignored_legacy_keys(
        check.raw_values(conf), conf.devices.enabled_mdev_types
    ):
        LOG.warning("%s", message)
    return conf
