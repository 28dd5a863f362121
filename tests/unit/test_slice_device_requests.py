"""Device groups of slice guests, hostdev scanning, and device records."""

import pytest
from lxml import etree

from nova_slices.devices.registry import MdevRegistry
from nova_slices.errors import HostError, RequestError
from nova_slices.placement.request_groups import (
    DeviceGroup,
    slice_device_groups,
)
from nova_slices.slices import encoding
from nova_slices.virt import metadata
from nova_slices.virt.hostdevs import domain_devices
from tests.unit.test_slice_spec import seed_tree

OWN = {"_S", "_A1", "_A2"}
SLICES = {"CUSTOM_SLICE_1_GPU_V1", "CUSTOM_SLICE_4_GPU_V1_UNITS"}


def groups(specs):
    return slice_device_groups(specs, OWN, SLICES)


def test_granular_and_unsuffixed_groups():
    out = groups(
        {
            "resources:VCPU": "0",
            "resources:MEMORY_MB": "0",
            "resources_NIC:CUSTOM_NIC_VF": "2",
            "trait_NIC:HW_NIC_SRIOV": "required",
            "trait_NIC:CUSTOM_SLOW": "forbidden",
            "resources:VGPU": "1",
        }
    )
    assert out == (
        DeviceGroup("", (("VGPU", 1),)),
        DeviceGroup(
            "_NIC",
            (("CUSTOM_NIC_VF", 2),),
            ("HW_NIC_SRIOV",),
            ("CUSTOM_SLOW",),
        ),
    )
    assert out[1].query_params() == [
        ("resources_NIC", "CUSTOM_NIC_VF:2"),
        ("required_NIC", "HW_NIC_SRIOV,!CUSTOM_SLOW"),
    ]
    assert out[0].query_params() == [("resources", "VGPU:1")]


def test_no_specs_no_groups():
    assert groups({}) == ()
    assert groups({"resources_GPU:VGPU": "0"}) == ()


BAD = [
    (
        {"hw:cpu_policy": "dedicated"},
        "slice-spec-unsupported",
        "hw:cpu_policy",
    ),
    (
        {"pci_passthrough:alias": "a:1"},
        "slice-spec-unsupported",
        "pci_passthrough:alias",
    ),
    ({"resources:VCPU": "4"}, "slice-root-resources", "resources:VCPU"),
    ({"resources_A1:VGPU": "1"}, "group-suffix-reserved", "resources_A1:VGPU"),
    (
        {"resources:CUSTOM_SLICE_1_GPU_V1": "1"},
        "slice-class-as-device",
        "resources:CUSTOM_SLICE_1_GPU_V1",
    ),
    (
        {"resources_X:CUSTOM_SLICE_4_GPU_V1_UNITS": "4"},
        "slice-class-as-device",
        "resources_X:CUSTOM_SLICE_4_GPU_V1_UNITS",
    ),
    (
        {"trait_GPU:CUSTOM_MDEV_NVIDIA_35": "required"},
        "trait-without-group",
        "trait_GPU:CUSTOM_MDEV_NVIDIA_35",
    ),
    (
        {"resources_GPU:vgpu": "1"},
        "resource-class-invalid",
        "resources_GPU:vgpu",
    ),
    ({"resources_GPU:VGPU": "one"}, "resources-invalid", "resources_GPU:VGPU"),
    (
        {"resources_GPU:VGPU": "1", "trait_GPU:X_Y": "required"},
        "trait-invalid",
        "trait_GPU:X_Y",
    ),
]


@pytest.mark.parametrize("specs,code,key", BAD, ids=[b[1] for b in BAD])
def test_bad_specs_name_the_key(specs, code, key):
    with pytest.raises(RequestError) as info:
        groups(specs)
    assert info.value.code == f"request.{code}"
    assert info.value.key == key
    assert key in str(info.value)


DOMAIN = """
<domain type='kvm'>
  <name>g</name>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x3b' slot='0x01'
               function='0x1'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
      <source><address uuid='3E9C4B0A-6F0E-4D2B-9D59-8A7C2C1F0001'/></source>
    </hostdev>
    <interface type='hostdev' managed='yes'>
      <source><address type='pci' domain='0x0000' bus='0x3b' slot='0x00'
               function='0x5'/></source>
    </interface>
    <hostdev mode='capabilities' type='storage'>
      <source><block>/dev/sdf1</block></source>
    </hostdev>
  </devices>
</domain>
"""


def test_domain_devices_reads_every_kind_of_hostdev():
    held = domain_devices(DOMAIN)
    assert held.pci == {"0000:3b:01.1", "0000:3b:00.5"}
    assert held.mdevs == {"3e9c4b0a-6f0e-4d2b-9d59-8a7c2c1f0001"}
    assert domain_devices("<domain><name>x</name></domain>").pci == set()


def test_metadata_round_trips_device_bindings():
    domain = etree.fromstring(DOMAIN)
    record = metadata.GuestRecord(
        "g",
        "11111111-2222-3333-4444-555555555555",
        "1_1",
        "CUSTOM_SLICE_1_GPU_V1",
        "2026-11-21T00:00:00+00:00",
        ("0000:3b:01.1",),
        (
            (
                "3e9c4b0a-6f0e-4d2b-9d59-8a7c2c1f0001",
                "nvidia-222",
                "0000:86:00.0",
            ),
        ),
    )
    metadata.inject(domain, record)
    assert metadata.read(etree.tostring(domain, encoding="unicode")) == record


def test_registry_survives_a_new_instance(tmp_path):
    MdevRegistry(str(tmp_path)).add("u1", "nvidia-222", "0000:86:00.0", "i1")
    MdevRegistry(str(tmp_path)).add("u2", "nvidia-222", "0000:86:00.0")
    again = MdevRegistry(str(tmp_path))
    assert [(e.uuid, e.instance_uuid) for e in again.entries()] == [
        ("u1", "i1"),
        ("u2", None),
    ]
    again.forget("u1")
    assert [e.uuid for e in MdevRegistry(str(tmp_path)).entries()] == ["u2"]


def test_corrupt_registry_is_an_error_not_a_reset(tmp_path):
    (tmp_path / "mdevs.json").write_text("{not json")
    with pytest.raises(HostError) as info:
        MdevRegistry(str(tmp_path)).entries()
    assert info.value.code == "host.mdev-registry-unreadable"
    assert (tmp_path / "mdevs.json").read_text() == "{not json"


def test_an_unsuffixed_device_joins_the_roots_group():
    """Placement takes one ``resources`` parameter: a vGPU asked for
    without a suffix is merged with the root's HOST_UNITS."""
    request = encoding.slice_request(seed_tree(), "CUSTOM_S4").with_devices(
        groups({"resources:VGPU": "1", "trait:CUSTOM_CUDA": "required"})
    )
    params = request.query_params()
    assert [k for k, _ in params].count("resources") == 1
    assert ("resources", "CUSTOM_SLICE_HOST_UNITS:4,VGPU:1") in params
    assert ("required", "CUSTOM_CUDA") in params
