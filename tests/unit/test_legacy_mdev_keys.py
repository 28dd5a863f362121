"""Keys of a legacy ``[vgpu_<type>]`` group that nothing reads are warned
about at config load, once each, naming the group, the key and the fix.

Nova 34 registers ``[vgpu_<type>]`` only as the deprecated group of
``device_addresses`` (``nova/conf/devices.py``), so ``mdev_class`` and
``max_instances`` written there are silently dropped: the type would be
reported as VGPU with no cap.
"""

import logging

import pytest

from nova_slices.cmd.runtime import load_conf
from nova_slices.conf.check import raw_values
from nova_slices.conf.devices import ignored_legacy_keys
from nova_slices.devices.mdev_config import resolve_mdev_types
from tests.unit.test_mdev_config import DEVICES

LEGACY = (
    "[devices]\nenabled_vgpu_types = nvidia-35\n"
    "[vgpu_nvidia-35]\ndevice_addresses = 0000:84:00.0\n"
    "mdev_class = CUSTOM_GPU_SMALL\nmax_instances = 2\n"
)


def load(tmp_path, *texts):
    paths = []
    for i, text in enumerate(texts):
        path = tmp_path / f"nova-{i}.conf"
        path.write_text(text)
        paths.append(path)
    return load_conf(paths), paths


def warnings(caplog):
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "nova_slices.conf"
    ]


def test_mdev_class_and_max_instances_are_warned_about(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    conf, [path] = load(tmp_path, LEGACY)
    assert warnings(caplog) == [
        f"[vgpu_nvidia-35] mdev_class (in {path}) is ignored: legacy "
        "[vgpu_<type>] groups take only device_addresses; move it to "
        "[mdev_nvidia-35] (rename the group)",
        f"[vgpu_nvidia-35] max_instances (in {path}) is ignored: legacy "
        "[vgpu_<type>] groups take only device_addresses; move it to "
        "[mdev_nvidia-35] (rename the group)",
    ]
    # and they are indeed ignored: what the warning says is true
    [t] = resolve_mdev_types(conf, DEVICES)
    assert (t.resource_class, t.max_instances, t.parents) == (
        "VGPU",
        None,
        ("0000:84:00.0",),
    )


def test_the_current_group_is_read_and_not_warned_about(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    conf, _ = load(tmp_path, LEGACY.replace("[vgpu_", "[mdev_"))
    assert warnings(caplog) == []
    [t] = resolve_mdev_types(conf, DEVICES)
    assert (t.resource_class, t.max_instances) == ("CUSTOM_GPU_SMALL", 2)


def test_once_per_key_across_files_and_repeats(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    _, paths = load(
        tmp_path,
        LEGACY,
        "[vgpu_nvidia-35]\nmax_instances = 3\n",
    )
    got = warnings(caplog)
    assert [m.split(" (in ")[0] for m in got] == [
        "[vgpu_nvidia-35] mdev_class",
        "[vgpu_nvidia-35] max_instances",
    ]
    # the first file that sets it is named
    assert str(paths[0]) in got[1]


def test_a_key_no_group_has_is_named_too(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    _, [path] = load(
        tmp_path,
        "[devices]\nenabled_mdev_types = nvidia-35\n"
        "[vgpu_nvidia-35]\ndevice_adresses = 0000:84:00.0\n",
    )
    assert warnings(caplog) == [
        f"[vgpu_nvidia-35] device_adresses (in {path}) is ignored: legacy "
        "[vgpu_<type>] groups take only device_addresses; [mdev_nvidia-35] "
        "has no such option either (it takes device_addresses, mdev_class, "
        "max_instances)"
    ]


# (config text, warnings expected): only groups of enabled types, only
# keys other than device_addresses
QUIET = [
    "[devices]\nenabled_mdev_types = nvidia-35\n"
    "[vgpu_nvidia-35]\ndevice_addresses = 0000:84:00.0\n",
    # not an enabled type: the whole group is someone else's business
    "[devices]\nenabled_mdev_types = nvidia-35\n"
    "[vgpu_nvidia-36]\nmdev_class = CUSTOM_X\n",
    "[devices]\nenabled_mdev_types = nvidia-35\n",
]


@pytest.mark.parametrize("text", QUIET, ids=["addresses", "other", "none"])
def test_nothing_to_warn_about(tmp_path, caplog, text):
    caplog.set_level(logging.WARNING)
    load(tmp_path, text)
    assert warnings(caplog) == []


def test_pure_function_reads_raw_values(tmp_path):
    conf, [path] = load(tmp_path, LEGACY.replace("nvidia-35", "Nvidia-35"))
    got = ignored_legacy_keys(raw_values(conf), ["Nvidia-35"])
    # oslo.config lower-cases section names; the type keeps its case
    assert [m.split(" (in ")[0] for m in got] == [
        "[vgpu_Nvidia-35] mdev_class",
        "[vgpu_Nvidia-35] max_instances",
    ]
    assert all("[mdev_Nvidia-35]" in m for m in got)
