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
