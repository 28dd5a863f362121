"""What the command line prints about flavors and legacy mdev groups.

``flavor-specs`` carries ``resources:PCPU=0`` in both flavor forms (the
libvirt-slices spec lists it: a slice's template owns its pCPUs), and a
legacy ``[vgpu_<type>]`` group's ignored keys reach the operator's
terminal as warnings on stderr, in a real process.
"""

import os
import subprocess
import sys

from tests.functional.conftest import BUNDLE_CONF


def test_flavor_specs_zero_pcpu_in_both_forms(cli):
    status, out, err = cli("flavor-specs", "--format", "json")
    assert status == 0, err
    assert sorted(out) == [
        "CUSTOM_SLICE_1_GPU_V1",
        "CUSTOM_SLICE_4_GPU_V1",
        "CUSTOM_SLICE_8_GPU_V1",
    ]
    for rc, form in out.items():
        # the Placement form spawn sends, and the Nova flavor's
        for specs in (form, form["nova_flavor"]):
            assert specs["resources:PCPU"] == "0", rc
            assert specs["resources:VCPU"] == "0", rc
            assert specs["resources:MEMORY_MB"] == "0", rc
        # a Nova flavor's disk comes from the root's DISK_GB
        assert form["resources:DISK_GB"] == "0"
        assert "resources:DISK_GB" not in form["nova_flavor"]


def test_legacy_group_keys_are_warned_about_on_stderr(tmp_path):
    with open(BUNDLE_CONF) as f:
        text = f.read()
    assert "[mdev_nvidia-222]\n" in text
    conf = tmp_path / "legacy.conf"
    conf.write_text(
        text.replace(
            "[mdev_nvidia-222]\n",
            "[vgpu_nvidia-222]\nmdev_class = CUSTOM_T4\nmax_instances = 4\n",
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nova_slices.cmd.main",
            "--config-file",
            str(conf),
            "--state-path",
            str(tmp_path / "state"),
            "validate",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "is ignored" in line]
    assert lines == [
        f"[vgpu_nvidia-222] {key} (in {conf}) is ignored: legacy "
        "[vgpu_<type>] groups take only device_addresses; move it to "
        "[mdev_nvidia-222] (rename the group)"
        for key in ("mdev_class", "max_instances")
    ]
    assert "Traceback" not in proc.stderr
