"""Device providers (pure): mdev parents and PCI devices."""

import dataclasses

import pytest

from nova_slices.devices.mdev_config import MdevTypeConfig
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.devices.providers import (
    mdev_providers,
    mdev_trait,
    pci_providers,
    provider_name,
)
from nova_slices.errors import ConfigError
from nova_slices.host.devices import Mdev
from tests.unit.test_mdev_config import DEVICES

ROOT = "11111111-1111-1111-1111-111111111111"


def test_mdev_provider_per_parent_with_existing_mdevs_and_cap():
    devices = dataclasses.replace(
        DEVICES,
        mdevs=(
            Mdev(
                "a" * 8 + "-0000-0000-0000-" + "0" * 12,
                "nvidia-35",
                "0000:84:00.0",
            ),
        ),
    )
    types = (
        MdevTypeConfig(
            "nvidia-35", "VGPU", None, ("0000:84:00.0", "0000:85:00.0")
        ),
        MdevTypeConfig("nvidia-36", "CUSTOM_BIG", 4, ("0000:86:00.0",)),
    )
    got = {p.name: p for p in mdev_providers("h", ROOT, types, devices)}
    assert sorted(got) == [
        "h_pci_0000_84_00_0",
        "h_pci_0000_85_00_0",
        "h_pci_0000_86_00_0",
    ]
    # 16 still available + 1 already created
    assert got["h_pci_0000_84_00_0"].inventories["VGPU"].total == 17
    assert got["h_pci_0000_85_00_0"].inventories["VGPU"].total == 16
    # capped by max_instances
    assert got["h_pci_0000_86_00_0"].inventories["CUSTOM_BIG"].total == 4
    assert got["h_pci_0000_86_00_0"].traits == {"CUSTOM_MDEV_NVIDIA_36"}
    assert all(p.parent_uuid == ROOT for p in got.values())


def test_names_and_traits():
    assert provider_name("h", "0000:3b:00.2") == "h_pci_0000_3b_00_2"
    assert mdev_trait("i915-GVTg_V5_8") == "CUSTOM_MDEV_I915_GVTG_V5_8"


def test_a_device_is_mdev_parent_or_passed_through_not_both():
    types = (MdevTypeConfig("nvidia-35", "VGPU", None, ("0000:84:00.0",)),)
    allowed = assignable(
        parse_device_specs(['{"address": "0000:84:00.0"}']), DEVICES
    )
    with pytest.raises(ConfigError) as info:
        pci_providers("h", ROOT, allowed, types)
    assert info.value.code == "config.device-mdev-and-pci"
