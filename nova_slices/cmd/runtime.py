"""Everything a command needs, opened lazily and closed once.

Commands that only read configuration never start Placement or open
libvirt; those that do share one of each per process.
"""

import contextlib
import functools
import os

from oslo_config import cfg

from nova_slices import conf as conf_mod
from nova_slices import data
from nova_slices.compute import factory
from nova_slices.errors import ConfigError
from nova_slices.host.connection import Host
from nova_slices.placement import connect

BUNDLE_CONF = "nova-slices.conf"


def default_config_files():
    """Config files to read when ``--config-file`` is not given.

    The usual oslo.config places (``/etc/nova-slices/nova-slices.conf``,
    ``~/.nova-slices/``...) first; when none exists, the embedded default:
    the shipped host bundle's own ``nova-slices.conf``.
    """
    found = cfg.find_config_files(project="nova-slices", prog="nova-slices")
    if found:
        return found
    bundled = os.path.join(data.host_bundle(), BUNDLE_CONF)
    return [bundled] if os.path.exists(bundled) else []


def load_conf(config_files=(), config_dirs=(), overrides=None):
    args = []
    for path in map(str, config_files):
        if not os.path.isfile(path):
            raise ConfigError(
                f"--config-file {path}: no such file",
                code="config.file-missing",
                key="--config-file",
                value=path,
            )
        args += ["--config-file", path]
    for path in config_dirs:
        args += ["--config-dir", path]
    defaults = (
        None if (config_files or config_dirs) else (default_config_files())
    )
    try:
        conf = conf_mod.make_conf(args, default_config_files=defaults)
    except cfg.Error as exc:
        raise ConfigError(
            f"configuration error: {exc}", code="config.invalid"
        ) from None
    for (group, name), value in (overrides or {}).items():
        conf.set_override(name, value, group=group)
    return conf


class Runtime(contextlib.ExitStack):
    def __init__(self, conf):
        super().__init__()
        self.conf = conf
        self._host = None
        self._client = None
        self._driver = None
        self.placement_service = None

    @property
    def host(self):
        if self._host is None:
            self._host = Host(self.conf)
            self.callback(self._host.close)
        return self._host

    @property
    def client(self):
        if self._client is None:
            client, service = connect.open_placement(self.conf)
            if service is not None:
                self.placement_service = service
                self.callback(service.stop)
            self._client = client
        return self._client

    @property
    def driver(self):
        """The slice driver when slices are configured, else dynamic."""
        if self._driver is None:
            self._driver = factory.open_driver(
                self.conf, self.host, self.client
            )
        return self._driver

    @functools.cached_property
    def has_slices(self):
        return factory.has_slices(self.conf)
