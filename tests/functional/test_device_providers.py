"""Device providers reported to the real Placement service."""

import json

from tests.functional.conftest import BUNDLE_CONF

GPU_SPEC = {
    "vendor_id": "10de",
    "product_id": "20b5",
    "resource_class": "gpu_a100",
    "traits": "gpu_80gb",
}
VF_SPEC = {
    "address": "0000:3b:00.*",
    "vendor_id": "15b3",
    "product_id": "101c",
    "resource_class": "nic_vf",
    "traits": "HW_NIC_SRIOV",
}
PCI_CONF = (
    f"[pci]\ndevice_spec = {json.dumps(GPU_SPEC)}\n"
    f"device_spec = {json.dumps(VF_SPEC)}\n"
)


def _bundle_without_slices(tmp_path):
    """The shipped bundle's configuration without its slices: their
    templates hold the A100s, which a host may not also offer through
    [pci] (slice.device-also-offered)."""
    conf = tmp_path / "no-slices.conf"
    conf.write_text(
        "".join(
            line
            for line in open(BUNDLE_CONF).readlines()
            if not line.startswith("slice_spec")
        )
    )
    return conf


def test_pci_providers_after_sync(cli, tmp_path):
    extra = tmp_path / "pci.conf"
    extra.write_text(PCI_CONF)
    config = [_bundle_without_slices(tmp_path), extra]
    status, out, err = cli("sync", "--format", "json", config=config)
    assert status == 0, err
    status, providers, _ = cli("providers", "--format", "json", config=config)
    by_name = {p["name"]: p for p in providers}
    root = by_name["gpu8-2s"]
    assert root["traits"] == ["COMPUTE_SOCKET_PCI_NUMA_AFFINITY"]
    gpu = by_name["gpu8-2s_pci_0000_98_00_0"]
    assert gpu["parent_uuid"] == root["uuid"]
    assert gpu["inventories"] == {
        "CUSTOM_GPU_A100": {"total": 1, "reserved": 0, "used": 0}
    }
    assert gpu["traits"] == ["CUSTOM_GPU_80GB"]
    # the NIC's VFs are inventory of one provider named after their PF;
    # the bundle's own spec (all 8 VFs) comes first and wins over this
    # test's narrower one: Nova's first-match rule
    nic = by_name["gpu8-2s_pci_0000_3b_00_0"]
    assert nic["inventories"] == {
        "CUSTOM_NIC_VF": {"total": 8, "reserved": 0, "used": 0}
    }
    assert nic["traits"] == ["HW_NIC_SRIOV"]
    gpus = [p for p in providers if "CUSTOM_GPU_A100" in p["inventories"]]
    assert len(gpus) == 8
    # unchanged configuration: a second sync writes nothing
    status, out, _ = cli("sync", "--format", "json", config=config)
    assert out["created"] == [] and out["updated"] == []


def test_pf_and_its_vfs_both_allowed_is_refused(cli, tmp_path):
    extra = tmp_path / "pci.conf"
    extra.write_text('[pci]\ndevice_spec = {"address": "0000:3b:*.*"}\n')
    status, out, _ = cli(
        "sync", "--format", "json", config=[BUNDLE_CONF, extra]
    )
    assert status == 2
    assert out["errors"][0]["code"] == "config.pci-pf-and-vfs"
