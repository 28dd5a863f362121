"""``nova-slices demo``, the README's first command, as a user runs it."""

import os
import subprocess
import sys


def test_demo_on_the_embedded_default(tmp_path):
    # no --config-file: the embedded default host bundle is found alone
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "nova_slices.cmd.main", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Traceback" not in proc.stderr
    assert "1. reported 14 resource providers" in out
    assert "a second sync changed nothing" in out
    # the 4-GPU slice guest gets a VF of the shipped NIC
    assert "demo-4gpu    -> slice 4_1" in out
    assert "+ 0000:3b:00.2" in out
    for name, slice_name in (("1", "1_5"), ("2", "1_6"), ("3", "1_7")):
        assert f"demo-1gpu-{name}  -> slice {slice_name}" in out
    assert "refused [slice.no-candidates]" in out
    assert "slice 8_1: conflicts with 1_5, 1_6, 1_7, 4_1 in use" in out
    assert "gpu8-2s_pci_0000_3b_00_0  [CUSTOM_NIC_VF 1/8]" in out
    assert "gpu8-2s_pci_0000_86_00_0  [VGPU 0/16]" in out
    assert "0 disagreements with Placement" in out
    assert "slice 4_1 and 0000:3b:00.2 free" in out
    assert "all slices and devices free again: True" in out


def run_demo(tmp_path, *args):
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "nova_slices.cmd.main", "demo", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert "Traceback" not in proc.stderr
    return proc


def test_demo_on_the_host_without_slices(tmp_path):
    proc = run_demo(tmp_path, "--host", "nfv-snc-2s")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "no slices: guests are placed dynamically on 4 NUMA cells" in out
    assert "reported 5 resource providers" in out
    assert "nfv-snc-2s  [VCPU 0/8, MEMORY_MB 0/262144 (reserved 4096)" in out
    # the pinned 2-cell guest: pairs of sibling threads, isolated emulator
    assert (
        "guest cell 0 -> host cell 0: vCPUs 0-3 pinned to host CPUs "
        "1-2,33-34; emulator on 3; 4096 MiB in 1G pages" in out
    )
    assert (
        "guest cell 1 -> host cell 1: vCPUs 4-7 pinned to host CPUs "
        "9-10,41-42; 4096 MiB in 1G pages" in out
    )
    # the socket policy: refused on socket 1, the GPU given on socket 0
    assert "refused [fit.no-fit]" in out
    assert "[pci.no-device-on-socket] alias a100 (numa policy socket)" in out
    assert "devices: 0000:31:00.0" in out
    assert "the usage rebuilt from libvirt is the same: True" in out
    assert "0 disagreements with Placement" in out
    assert "every CPU, page, device and allocation free again: True" in out


def test_demo_on_an_unknown_bundle(tmp_path):
    proc = run_demo(tmp_path, "--host", "no-such-host")
    assert proc.returncode == 2
    assert "config.bundle-invalid" in proc.stderr
    assert "gpu8-2s, nfv-snc-2s" in proc.stderr
