"""Fixtures: the shipped host bundle in libvirt's test driver, and the real
Placement service on 127.0.0.1."""

import os
import shutil

import pytest

from nova_slices import data
from nova_slices.cmd.runtime import Runtime, load_conf
from nova_slices.placement.client import PlacementClient
from nova_slices.placement.embedded import EmbeddedPlacement
from nova_slices.placement.session import placement_adapter

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
