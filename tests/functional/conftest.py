"""Fixtures: the shipped host bundle in libvirt's test driver, and the real
Placement service on 127.0.0.1."""

import json
import os
import shutil

import pytest

from nova_slices import data
from nova_slices.cmd.main import main
from nova_slices.cmd.runtime import Runtime, load_conf
from nova_slices.placement.client import PlacementClient
from nova_slices.placement.embedded import EmbeddedPlacement
from nova_slices.placement.session import placement_adapter
from nova_slices.placement.sync import ProviderTreeSync
from nova_slices.provider_tree import build_provider_tree
from nova_slices.slices.tree import load_tree
from tests.fixtures import mariadb as mariadb_fixture

BUNDLE_CONF = os.path.join(data.host_bundle(), "nova-slices.conf")


def make_conf(state_path, config_files=(BUNDLE_CONF,), **overrides):
    """A conf for the shipped bundle with a private state directory."""
    values = {(None, "state_path"): str(state_path)}
    for key, value in overrides.items():
        group, _, name = key.rpartition("__")
        values[(group or None, name)] = value
    return load_conf(list(config_files), overrides=values)


@pytest.fixture
def state_path(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def conf(state_path):
    return make_conf(state_path)


@pytest.fixture
def runtime(conf):
    """A Runtime whose embedded Placement and libvirt host are real."""
    with Runtime(conf) as rt:
        yield rt


@pytest.fixture
def placement(state_path):
    """A bare embedded Placement and a raw client to it."""
    with EmbeddedPlacement(str(state_path)) as service:
        yield PlacementClient(
            placement_adapter(service.endpoint), service.endpoint
        )


@pytest.fixture
def template_dir(tmp_path):
    """A private copy of the shipped templates that a test may break."""
    target = tmp_path / "templates"
    shutil.copytree(data.templates_dir(), target)
    return target


def remote_conf(path, endpoint, extra=""):
    """A config file pointing ``[placement] mode = remote`` at ``endpoint``.

    keystoneauth's admin_token plugin speaks the noauth2 dialect of the
    Placement services the tests start.
    """
    path.write_text(
        "[placement]\nmode = remote\nauth_type = admin_token\n"
        f"endpoint = {endpoint}\ntoken = admin\n"
        f"endpoint_override = {endpoint}\n{extra}"
    )
    return path


@pytest.fixture
def cli(state_path, capsys):
    """Run ``nova-slices`` in this process; JSON output comes back parsed."""

    def run(*argv, config=BUNDLE_CONF):
        configs = config if isinstance(config, (list, tuple)) else [config]
        args = []
        for path in configs:
            args += ["--config-file", str(path)]
        capsys.readouterr()
        status = main([*args, "--state-path", str(state_path), *argv])
        out, err = capsys.readouterr()
        if "json" in argv and out:
            out = json.loads(out)
        return status, out, err

    return run


@pytest.fixture
def slice_host(placement, state_path):
    """The shipped slice tree, reported to a fresh Placement."""
    tree = load_tree(make_conf(state_path))
    providers = build_provider_tree("gpu8-2s", tree)
    ProviderTreeSync(placement).sync(providers)
    return tree, providers


@pytest.fixture(scope="session")
def mariadb():
    """A private MariaDB server (Debian's mariadb-server must be installed:
    the README's test command installs it; a missing server fails the test,
    it is never skipped)."""
    reason = mariadb_fixture.unavailable_reason()
    if reason:
        pytest.fail("the MariaDB tests need mariadb-server: " + reason)
    with mariadb_fixture.MariaDB() as server:
        yield server
