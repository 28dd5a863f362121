"""Devices next to slices, end to end on the shipped bundle.

Real parts: libvirt's test driver with the bundle's node devices (a T4 with
nvidia-222 mdevs, one already made; a ConnectX-6 with 8 VFs), the real
Placement service, the real mdev backend.  Only the kernel is a stand-in:
a thread that answers the backend's sysfs writes in a temporary directory.
"""

import os

import pytest
from lxml import etree

from nova_slices import data
from nova_slices.cmd.runtime import Runtime
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import parse_node_devices, split_node_file
from nova_slices.virt import metadata
from nova_slices.virt.hostdevs import domain_devices
from tests.fixtures.fake_sysfs import FakeSysfs
from tests.fixtures.scheduling import EXCLUSIVE
from tests.functional.conftest import BUNDLE_CONF, make_conf
from tests.functional.test_concurrency import spawn_all

T4 = "0000:86:00.0"
PF = "0000:3b:00.0"
EXISTING_MDEV = "3e9c4b0a-6f0e-4d2b-9d59-8a7c2c1f0001"
ONE_GPU = "CUSTOM_SLICE_1_GPU_V1"
WITH_VF = ("--extra-spec", "resources_NIC:CUSTOM_NIC_VF=1")
WITH_VGPU = ("--extra-spec", "resources_GPU:VGPU=1")


def bundle_devices():
    bundle = data.host_bundle()
    with open(os.path.join(bundle, "node.xml")) as f:
        docs = split_node_file(f.read())
    with open(os.path.join(bundle, "capabilities.xml")) as f:
        topology = parse_capabilities(f.read())
    return parse_node_devices(docs, topology)


@pytest.fixture
def kernel(tmp_path):
    """A stand-in kernel with the bundle's mdev types and existing mdev."""
    with FakeSysfs.like_host(tmp_path / "sys", bundle_devices()) as fake:
        yield fake


@pytest.fixture
def config(tmp_path, kernel):
    extra = tmp_path / "sysfs.conf"
    extra.write_text(f"[devices]\nmdev_sysfs_root = {kernel.root}\n")
    return [BUNDLE_CONF, str(extra)]


def spawn(cli, config, name, *extra, slice_class=ONE_GPU):
    return cli(
        "spawn",
        name,
        "--slice-class",
        slice_class,
        *extra,
        "--format",
        "json",
        config=config,
    )


def domain_xml(state_path, config, name):
    with Runtime(make_conf(state_path, config_files=config)) as rt:
        return rt.host.lookup(name).XMLDesc(0)


def providers_by_name(cli, config):
    status, providers, err = cli(
        "providers", "--format", "json", config=config
    )
    assert status == 0, err
    return {p["name"]: p for p in providers}


def test_device_providers_on_the_shipped_bundle(cli, config):
    status, out, err = cli("sync", "--format", "json", config=config)
    assert status == 0, err
    by_name = providers_by_name(cli, config)
    root = by_name["gpu8-2s"]
    assert root["traits"] == ["COMPUTE_SOCKET_PCI_NUMA_AFFINITY"]
    t4 = by_name["gpu8-2s_pci_0000_86_00_0"]
    assert t4["parent_uuid"] == root["uuid"]
    # 15 instances left plus the one mdev already made
    assert t4["inventories"] == {
        "VGPU": {"total": 16, "reserved": 0, "used": 0}
    }
    assert t4["traits"] == ["CUSTOM_MDEV_NVIDIA_222"]
    nic = by_name["gpu8-2s_pci_0000_3b_00_0"]
    assert nic["parent_uuid"] == root["uuid"]
    assert nic["inventories"] == {
        "CUSTOM_NIC_VF": {"total": 8, "reserved": 0, "used": 0}
    }
    assert nic["traits"] == ["HW_NIC_SRIOV"]
    # the A100s belong to the slice templates: not offered as devices
    assert not any(
        "CUSTOM_PCI_10DE_20B5" in p["inventories"] for p in by_name.values()
    )


def test_spawn_binds_a_vf_and_the_free_existing_mdev(cli, config, state_path):
    status, out, err = spawn(cli, config, "g1", *WITH_VF, *WITH_VGPU)
    assert status == 0, err
    assert out["devices"] == {
        "pci": ["0000:3b:00.2"],
        "mdevs": [EXISTING_MDEV],
    }
    # one allocation: the slice chain plus one VF and one vGPU
    by_name = providers_by_name(cli, config)
    assert (
        by_name["gpu8-2s_pci_0000_3b_00_0"]["inventories"]["CUSTOM_NIC_VF"][
            "used"
        ]
        == 1
    )
    assert (
        by_name["gpu8-2s_pci_0000_86_00_0"]["inventories"]["VGPU"]["used"] == 1
    )
    # the template rendered both devices as hostdevs
    dom = etree.fromstring(domain_xml(state_path, config, "g1"))
    mdev = dom.find("devices/hostdev[@type='mdev']")
    assert mdev.get("model") == "vfio-pci"
    assert mdev.find("source/address").get("uuid") == EXISTING_MDEV
    vf = [
        h.find("source/address").attrib
        for h in dom.iterfind("devices/hostdev[@type='pci']")
        if h.find("source/address").get("bus") == "0x3b"
    ]
    assert vf == [
        {"domain": "0x0000", "bus": "0x3b", "slot": "0x00", "function": "0x2"}
    ]
    # and the guest's record says what was bound, with type and parent
    record = metadata.read(etree.tostring(dom, encoding="unicode"))
    assert record.pci == ("0000:3b:00.2",)
    assert record.mdevs == ((EXISTING_MDEV, "nvidia-222", T4),)


def test_new_mdevs_are_created_listed_and_survive_restart(
    cli, config, state_path, kernel
):
    assert spawn(cli, config, "g1", *WITH_VGPU)[0] == 0
    status, out, err = spawn(cli, config, "g2", *WITH_VGPU)
    assert status == 0, err
    (created,) = out["devices"]["mdevs"]
    assert created != EXISTING_MDEV
    assert os.path.isdir(
        os.path.join(kernel.root, "bus/mdev/devices", created)
    )
    # a new process (a restarted service) lists what we created
    status, out, err = cli("mdevs", "--format", "json", config=config)
    assert status == 0, err
    assert [
        (m["uuid"], m["type"], m["parent"], m["present"], m["used_by"])
        for m in out["mdevs"]
    ] == [(created, "nvidia-222", T4, True, "g2")]
    status, text, _ = cli("mdevs", config=config)
    assert created in text and "g2" in text
    # and rebuilds every guest's bindings from libvirt
    status, out, err = cli("list", "--format", "json", config=config)
    devices = {g["name"]: g["devices"] for g in out["guests"]}
    assert devices == {
        "g1": {"pci": [], "mdevs": [EXISTING_MDEV]},
        "g2": {"pci": [], "mdevs": [created]},
    }
    assert out["discrepancies"] == []
    # a third guest after the restart gets neither
    status, out, err = spawn(cli, config, "g3", *WITH_VGPU)
    assert status == 0, err
    assert out["devices"]["mdevs"][0] not in (EXISTING_MDEV, created)


def test_destroy_frees_the_devices_for_the_next_guest(cli, config, state_path):
    status, first, err = spawn(cli, config, "g1", *WITH_VF, *WITH_VGPU)
    assert status == 0, err
    status, second, err = spawn(cli, config, "g2", *WITH_VF, *WITH_VGPU)
    assert status == 0, err
    assert second["devices"]["pci"] == ["0000:3b:00.3"]
    assert cli("destroy", "g1", config=config)[0] == 0
    by_name = providers_by_name(cli, config)
    assert (
        by_name["gpu8-2s_pci_0000_3b_00_0"]["inventories"]["CUSTOM_NIC_VF"][
            "used"
        ]
        == 1
    )
    # the freed VF and mdev are handed out again; no new mdev is made
    status, third, err = spawn(cli, config, "g3", *WITH_VF, *WITH_VGPU)
    assert status == 0, err
    assert third["devices"] == first["devices"]
    status, out, _ = cli("mdevs", "--format", "json", config=config)
    assert [m["uuid"] for m in out["mdevs"]] == second["devices"]["mdevs"]


def test_host_reboot_recreates_the_guests_mdevs(cli, config, kernel):
    status, out, err = spawn(cli, config, "g1", *WITH_VGPU)
    assert spawn(cli, config, "g2", *WITH_VGPU)[0] == 0
    status, out, err = cli("mdevs", "--format", "json", config=config)
    created = [m["uuid"] for m in out["mdevs"]]
    kernel.reboot()
    status, out, err = cli("mdevs", "--format", "json", config=config)
    assert [m["present"] for m in out["mdevs"]] == [False]
    status, out, err = cli(
        "mdevs", "--recreate", "--format", "json", config=config
    )
    assert status == 0, err
    # the bundle's own mdev is used by g1 and made again too
    assert sorted(out["recreated"]) == sorted([EXISTING_MDEV, *created])
    # recreated, it is now one we made: listed, present, in use by g1
    assert sorted(
        (m["uuid"], m["present"], m["used_by"]) for m in out["mdevs"]
    ) == sorted([(EXISTING_MDEV, True, "g1"), (created[0], True, "g2")])


def test_allocation_beyond_what_the_kernel_has_fails_cleanly(
    cli, config, state_path, kernel
):
    """Placement's inventory is stale: the claim is released, no guest."""
    assert cli("sync", config=config)[0] == 0
    type_dir = os.path.join(
        kernel.root,
        "class/mdev_bus",
        T4,
        "mdev_supported_types/nvidia-222",
    )
    with open(os.path.join(type_dir, "available_instances"), "w") as f:
        f.write("0")
    assert spawn(cli, config, "g1", *WITH_VGPU)[0] == 0  # existing mdev
    status, out, err = spawn(cli, config, "g2", *WITH_VGPU)
    assert status == 1
    assert out["errors"][0]["code"] == "binding.mdev-exhausted"
    assert "nova-slices sync" in out["errors"][0]["message"]
    status, out, _ = cli("list", "--format", "json", config=config)
    assert [g["name"] for g in out["guests"]] == ["g1"]
    assert out["discrepancies"] == []


def test_no_device_left_is_a_rejection_naming_the_device(cli, config):
    for i in range(8):
        status, out, err = spawn(cli, config, f"g{i}", *WITH_VF)
        assert status == 0, err
    # the 4-GPU slices conflict with the 1-GPU ones in use anyway; free
    # one 1-GPU slice so only the VF is missing
    assert cli("destroy", "g7", config=config)[0] == 0
    status, out, err = spawn(
        cli, config, "x", "--extra-spec", "resources_NIC:CUSTOM_NIC_VF=2"
    )
    assert status == 1
    error = out["errors"][0]
    assert error["code"] == "slice.no-candidates"
    assert "CUSTOM_NIC_VF" in error["message"]
    # the reasons name the slice that is free and the device that is not
    assert {"slice": "1_8", "reason": "free"} in out["reasons"]
    assert {
        "device": "gpu8-2s_pci_0000_3b_00_0",
        "reason": "CUSTOM_NIC_VF: 1 of 8 free",
    } in out["reasons"]
    status, out, _ = spawn(
        cli, config, "y", "--extra-spec", "resources_F:CUSTOM_FPGA=1"
    )
    assert status == 1
    error = out["errors"][0]
    assert (error["code"], error["key"]) == (
        "device.not-offered",
        "resources_F:CUSTOM_FPGA",
    )
    assert "offered: CUSTOM_NIC_VF, VGPU" in error["message"]


@pytest.mark.parametrize(
    "spec, code",
    [
        ("hw:cpu_policy=dedicated", "request.slice-spec-unsupported"),
        ("resources:VCPU=2", "request.slice-root-resources"),
        ("resources_S:VGPU=1", "request.group-suffix-reserved"),
        (
            "resources_X:CUSTOM_SLICE_1_GPU_V1=1",
            "request.slice-class-as-device",
        ),
        (
            "trait_GPU:CUSTOM_MDEV_NVIDIA_222=required",
            "request.trait-without-group",
        ),
        ("resources_GPU:vgpu=1", "request.resource-class-invalid"),
    ],
)
def test_bad_device_requests_are_refused_before_the_claim(
    cli, config, spec, code
):
    status, out, err = spawn(cli, config, "g", "--extra-spec", spec)
    assert status == 2, out
    assert out["errors"][0]["code"] == code
    key = spec.partition("=")[0]
    assert key in out["errors"][0]["message"]
    status, out, _ = cli("list", "--format", "json", config=config)
    assert out == {"guests": [], "discrepancies": []}


@EXCLUSIVE  # a burst of ten processes
def test_concurrent_spawns_never_share_a_device(state_path, config):
    """Ten processes race for eight VFs and vGPUs on eight 1-GPU slices."""
    results = spawn_all(
        state_path,
        extra_config=config[1:],
        requests=[ONE_GPU] * 10,
        extra_args=WITH_VF + WITH_VGPU,
    )
    statuses = [status for status, _ in results]
    assert sorted(statuses) == [0] * 8 + [1] * 2
    conf = make_conf(state_path, config_files=config)
    with Runtime(conf) as rt:
        held = [domain_devices(d.XMLDesc(0)) for d in rt.host.domains()]
        vfs = [a for h in held for a in h.pci if a.startswith("0000:3b")]
        mdevs = [u for h in held for u in h.mdevs]
        assert len(vfs) == len(set(vfs)) == 8
        assert len(mdevs) == len(set(mdevs)) == 8
        # every Placement allocation is matched by a domain, and back
        views, problems = rt.driver.guests()
        assert problems == []
        assert len(views) == 8
        usage = rt.driver.slice_usage()
        consumers = {c for by_consumer in usage.values() for c in by_consumer}
        assert consumers == {v.instance_uuid for v in views}
