"""Allocations to concrete devices."""

import itertools

import pytest

from nova_slices.devices.binding import BindingError, plan_binding
from nova_slices.devices.mdev_config import MdevTypeConfig
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.devices.providers import device_index, device_provider_uuid
from nova_slices.host.devices import Mdev
from tests.unit.test_pci_spec import DEVICES as SHIPPED

ROOT = "22222222-2222-2222-2222-222222222222"
GPU = "0000:84:00.0"
TYPES = (MdevTypeConfig("nvidia-35", "VGPU", None, (GPU,)),)
SPECS = parse_device_specs(
    [
        '{"address": "0000:3b:00.*", "vendor_id": "15b3", "product_id": '
        '"101c", "resource_class": "nic_vf"}',
        '{"address": "0000:17:00.0", "resource_class": "gpu"}',
    ]
)
INDEX = device_index(ROOT, TYPES, assignable(SPECS, SHIPPED))
MDEV_RP = device_provider_uuid(ROOT, GPU)
NIC_RP = device_provider_uuid(ROOT, "0000:3b:00.0")
GPU_RP = device_provider_uuid(ROOT, "0000:17:00.0")
EXISTING = (
    Mdev("00000000-0000-0000-0000-00000000000a", "nvidia-35", GPU),
    Mdev("00000000-0000-0000-0000-00000000000b", "nvidia-35", GPU),
    Mdev("00000000-0000-0000-0000-00000000000c", "nvidia-36", GPU),
)


def uuids():
    counter = itertools.count(1)
    return lambda: f"11111111-0000-0000-0000-{next(counter):012d}"


def test_free_mdevs_first_then_new_ones():
    in_use = {"00000000-0000-0000-0000-00000000000a"}
    got = plan_binding(
        {MDEV_RP: {"VGPU": 2}}, INDEX, EXISTING, in_use, uuids()
    )
    assert got.mdevs == (
        ("00000000-0000-0000-0000-00000000000b", "nvidia-35", GPU),
    )
    assert got.create == (
        ("11111111-0000-0000-0000-000000000001", "nvidia-35", GPU),
    )


def test_vfs_of_the_allocated_pf_and_a_whole_device():
    got = plan_binding(
        {NIC_RP: {"CUSTOM_NIC_VF": 2}, GPU_RP: {"CUSTOM_GPU": 1}},
        INDEX,
        (),
        {"0000:3b:00.2"},
    )
    assert sorted(got.pci) == ["0000:17:00.0", "0000:3b:00.3", "0000:3b:00.4"]


def test_never_twice():
    with pytest.raises(BindingError) as info:
        plan_binding({GPU_RP: {"CUSTOM_GPU": 1}}, INDEX, (), {"0000:17:00.0"})
    assert info.value.code == "binding.device-in-use"
    with pytest.raises(BindingError) as info:
        plan_binding({NIC_RP: {"CUSTOM_NIC_VF": 7}}, INDEX, (), set())
    assert info.value.code == "binding.not-enough-vfs"


def test_slice_and_unknown_providers_are_not_devices():
    assert plan_binding(
        {"some-slice": {"CUSTOM_SLICE_1_GPU_V1": 1}}, INDEX, (), set()
    ) == plan_binding({}, INDEX, (), set())
