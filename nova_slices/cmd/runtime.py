"""Everything a command needs, opened lazily and closed once.

Commands that only read configuration never start Placement or open
libvirt; those that do share one of each per process.  The modules behind
them (libvirt, keystoneauth, the drivers) are imported where they are
opened, so a command that reads only files starts in a fraction of the
time.
"""

import contextlib
import functools
import os

from oslo_config import cfg

from nova_slices import conf as conf_mod
from nova_slices import data
from nova_slices.errors import ConfigError

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


def check_state_path(conf):
    """``state_path`` must be a directory (or creatable as one) before any
    of our files are made in it."""
    path = conf.state_path
    why = None
    if not path:
        why = "is empty"
    elif os.path.exists(path) and not os.path.isdir(path):
        why = "is not a directory"
    if why:
        raise ConfigError(
            f"[DEFAULT] state_path (--state-path) {path!r} {why}: set it to "
            "a directory nova-slices may write its own files in (default "
            "~/.local/state/nova-slices)",
            code="config.state-path-unusable",
            key="[DEFAULT] state_path",
            value=path,
        )


def check_placement_choice(conf):
    """The embedded Placement only when chosen, as the demo host is.

    ``mode`` defaults to ``embedded``, which suits the demo host.  A
    configuration of a real hypervisor, or one that names keystoneauth
    credentials, would otherwise report this machine to a private
    Placement nobody else sees, ignoring the credentials.
    """
    from nova_slices.conf.placement import ensure_keystoneauth_opts
    from nova_slices.host.connection import (
        chosen,
        is_test_driver,
        resolve_uri,
    )

    ensure_keystoneauth_opts(conf)
    if chosen(conf, "mode", "placement"):
        return
    uri = resolve_uri(conf)
    if not is_test_driver(uri):
        why = f"[libvirt] connection_uri = {uri} is a real hypervisor"
    elif conf.placement.auth_type:
        why = f"[placement] auth_type = {conf.placement.auth_type} is set"
    elif conf.placement.endpoint_override:
        why = "[placement] endpoint_override is set"
    else:
        return
    raise ConfigError(
        f"{why} but [placement] mode is not set: set mode = remote to "
        "report to the deployment's Placement (with auth_type, auth_url, "
        "...), or mode = embedded for a private one on 127.0.0.1",
        code="config.placement-mode-required",
        key="[placement] mode",
        value=conf.placement.mode,
    )


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
            from nova_slices.host.connection import Host

            check_state_path(self.conf)
            self._host = Host(self.conf)
            self.callback(self._host.close)
        return self._host

    @property
    def client(self):
        if self._client is None:
            from nova_slices.placement import connect

            check_placement_choice(self.conf)
            if self.conf.placement.mode == "embedded":
                check_state_path(self.conf)
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
            # before libvirt is opened: the choice is the configuration's
            from nova_slices.compute import factory

            check_placement_choice(self.conf)
            self._driver = factory.open_driver(
                self.conf, self.host, self.client
            )
        return self._driver

    @functools.cached_property
    def placing_driver(self):
        """The driver, for commands that give the host away (spawn, sync).

        A host whose slices overlap is refused here, before anything is
        claimed or reported to Placement; ``validate`` lists every
        overlap instead.  Commands that only read or free the host
        (``list``, ``usage``, ``destroy``, ``release``) still run on it,
        so an operator can see and clean up what already runs there
        while fixing the templates.
        """
        self.driver.check_startup()
        return self.driver

    @functools.cached_property
    def has_slices(self):
        from nova_slices.compute import factory

        return factory.has_slices(self.conf)
