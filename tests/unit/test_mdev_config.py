"""[devices] enabled_mdev_types and [mdev_<type>] against host devices."""

import pytest

from nova_slices.cmd.runtime import load_conf
from nova_slices.devices.mdev_config import resolve_mdev_types, resource_class
from nova_slices.errors import ConfigError
from nova_slices.host.devices import HostDevices, MdevType, PciDevice


def gpu(address, *types, node=0):
    return PciDevice(
        address,
        "10de",
        "1eb8",
        numa_node=node,
        mdev_types=tuple(MdevType(t, 16, "vfio-pci") for t in types),
    )


DEVICES = HostDevices(
    (
        gpu("0000:84:00.0", "nvidia-35", "nvidia-36"),
        gpu("0000:85:00.0", "nvidia-35", "nvidia-36"),
        gpu("0000:86:00.0", "nvidia-35", "nvidia-36", node=1),
        PciDevice("0000:3b:00.0", "15b3", "101b"),
    )
)


def resolve(tmp_path, text):
    path = tmp_path / "nova.conf"
    path.write_text(text)
    return resolve_mdev_types(load_conf([path]), DEVICES)


def test_addresses_and_an_unlisted_type(tmp_path):
    got = resolve(
        tmp_path,
        (
            "[devices]\nenabled_mdev_types = nvidia-35, nvidia-36\n"
            "[mdev_nvidia-35]\ndevice_addresses = 0000:84:00.0,85:00.0\n"
            "mdev_class = gpu_small\nmax_instances = 4\n"
        ),
    )
    assert [
        (t.type, t.resource_class, t.max_instances, t.parents) for t in got
    ] == [
        ("nvidia-35", "CUSTOM_GPU_SMALL", 4, ("0000:84:00.0", "0000:85:00.0")),
        ("nvidia-36", "VGPU", None, ("0000:86:00.0",)),
    ]


def test_legacy_names(tmp_path):
    got = resolve(
        tmp_path,
        (
            "[devices]\nenabled_vgpu_types = nvidia-36\n"
            "[vgpu_nvidia-36]\ndevice_addresses = 0000:86:00.0\n"
        ),
    )
    assert [(t.type, t.parents) for t in got] == [
        ("nvidia-36", ("0000:86:00.0",))
    ]


@pytest.mark.parametrize(
    "value,expected",
    [
        ("VGPU", "VGPU"),
        ("CUSTOM_X1", "CUSTOM_X1"),
        ("big", "CUSTOM_BIG"),
        ("custom_a", "CUSTOM_A"),
    ],
)
def test_mdev_class(tmp_path, value, expected):
    got = resolve(
        tmp_path,
        (
            "[devices]\nenabled_mdev_types = nvidia-35\n"
            f"[mdev_nvidia-35]\nmdev_class = {value}\n"
        ),
    )
    assert got[0].resource_class == expected


def test_nothing_enabled(tmp_path):
    assert resolve(tmp_path, "") == ()


BAD = [
    (
        "[devices]\nenabled_mdev_types = nvidia-35, nvidia-36\n"
        "[mdev_nvidia-35]\ndevice_addresses = 0000:84:00.0\n"
        "[mdev_nvidia-36]\ndevice_addresses = 0000:84:00.0\n",
        "config.mdev-device-twice",
        "[mdev_nvidia-36] device_addresses",
    ),
    (
        "[devices]\nenabled_mdev_types = nvidia-35\n"
        "[mdev_nvidia-35]\ndevice_addresses = 0000:99:00.0\n",
        "config.mdev-device-missing",
        "[mdev_nvidia-35] device_addresses",
    ),
    (
        "[devices]\nenabled_mdev_types = nvidia-35\n"
        "[mdev_nvidia-35]\ndevice_addresses = 0000:3b:00.0\n",
        "config.mdev-type-unsupported",
        "[mdev_nvidia-35] device_addresses",
    ),
    (
        "[devices]\nenabled_mdev_types = nvidia-99\n",
        "config.mdev-type-unsupported",
        "[devices] enabled_mdev_types",
    ),
    (
        "[devices]\nenabled_mdev_types = nvidia-35, nvidia-36\n",
        "config.mdev-types-ambiguous",
        "[devices] enabled_mdev_types",
    ),
    (
        "[devices]\nenabled_mdev_types = nvidia-35, nvidia-35\n",
        "config.mdev-type-duplicate",
        "[devices] enabled_mdev_types",
    ),
    (
        "[devices]\nenabled_mdev_types = nvidia-35\n"
        "[mdev_nvidia-35]\nmdev_class = gpu-large\n",
        "config.mdev-class-invalid",
        "[mdev_nvidia-35] mdev_class",
    ),
    (
        "[devices]\nenabled_vgpu_types = nvidia-35\n"
        "[vgpu_nvidia-35]\ndevice_addresses = 0000:99:00.0\n",
        "config.mdev-device-missing",
        "[mdev_nvidia-35] device_addresses",
    ),
]


@pytest.mark.parametrize("text,code,key", BAD, ids=[b[1] for b in BAD])
def test_bad_mdev_configuration(tmp_path, text, code, key):
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path, text)
    assert (info.value.code, info.value.key) == (code, key)


def test_max_instances_must_be_positive(tmp_path):
    path = tmp_path / "nova.conf"
    path.write_text(
        "[devices]\nenabled_mdev_types = nvidia-35\n"
        "[mdev_nvidia-35]\nmax_instances = 0\n"
    )
    with pytest.raises(ConfigError) as info:
        resolve_mdev_types(load_conf([path]), DEVICES)
    assert "max_instances" in info.value.message


LONG = "CUSTOM_" + "X" * 300


# (mdev_class value, code, words of the message besides key and value)
@pytest.mark.parametrize(
    "value,code,words",
    [
        ("MEMORY_MB", "config.mdev-class-standard", "VGPU or a custom"),
        ("PCPU", "config.mdev-class-standard", "standard resource class"),
        ("CUSTOM_GPU\n", "config.mdev-class-invalid", "must match"),
        ("gpu large", "config.mdev-class-invalid", "'CUSTOM_GPU LARGE'"),
        (LONG, "config.mdev-class-invalid", "at most 255"),
    ],
    ids=["MEMORY_MB", "PCPU", "newline", "space", "long"],
)
def test_mdev_class_placement_would_refuse(value, code, words):
    with pytest.raises(ConfigError) as info:
        resource_class("nvidia-35", value)
    err = info.value
    key = "[mdev_nvidia-35] mdev_class"
    assert (err.code, err.key, err.value) == (code, key, value)
    assert err.message.startswith(f"{key} = {value!r}")
    assert words in err.message


# legacy names next to current ones: one would be ignored, so refused
# (config text, code, key, value)
LEGACY = [
    (
        "[devices]\nenabled_mdev_types = nvidia-35\n"
        "[mdev_nvidia-35]\ndevice_addresses = 0000:84:00.0\n"
        "[vgpu_nvidia-35]\ndevice_addresses = 0000:85:00.0\n",
        "config.legacy-group-conflict",
        "[mdev_nvidia-35]",
        "[vgpu_nvidia-35]",
    ),
    (
        "[devices]\nenabled_vgpu_types = nvidia-35\n"
        "[vgpu_nvidia-35]\nmax_instances = 2\n"
        "[mdev_nvidia-35]\nmdev_class = CUSTOM_A\n",
        "config.legacy-group-conflict",
        "[mdev_nvidia-35]",
        "[vgpu_nvidia-35]",
    ),
    (
        "[devices]\nenabled_mdev_types = nvidia-35\n"
        "enabled_vgpu_types = nvidia-36\n",
        "config.legacy-option-conflict",
        "[devices] enabled_mdev_types",
        "nvidia-36",
    ),
]


@pytest.mark.parametrize(
    "text,code,key,value", LEGACY, ids=["groups", "groups-legacy", "types"]
)
def test_legacy_and_new_names_both_set(tmp_path, text, code, key, value):
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path, text)
    err = info.value
    assert (err.code, err.key, err.value) == (code, key, value)
    assert key.split()[0] in err.message and value in err.message


def test_legacy_types_that_agree_are_one_list(tmp_path):
    got = resolve(
        tmp_path,
        "[devices]\nenabled_mdev_types = nvidia-35, nvidia-36\n"
        "enabled_vgpu_types = nvidia-35,nvidia-36\n"
        "[mdev_nvidia-35]\ndevice_addresses = 0000:84:00.0\n",
    )
    assert [t.type for t in got] == ["nvidia-35", "nvidia-36"]
