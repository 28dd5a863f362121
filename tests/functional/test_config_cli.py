"""Bad option values and bad configuration files, through the CLI.

Each row is a file added after the shipped bundle's own configuration.
oslo.config's checks (types, ranges, choices declared on the options)
refuse the value; the CLI must answer exit 2 with a stable code, the
``[group] option`` as key, the value as written and the file, and never
an internal error -- whether or not the command would ever read the
option.
"""

import os

import pytest

from nova_slices import data
from tests.functional.conftest import BUNDLE_CONF

LONG_CLASS = "CUSTOM_" + "X" * 300

# (group, option, value as written): the file sets just that
BAD_VALUES = [
    ("DEFAULT", "reserved_host_memory_mb", "-1"),
    # empty: oslo.config would read None in place of the default
    ("DEFAULT", "reserved_host_memory_mb", ""),
    ("placement", "claim_retries", ""),
    ("DEFAULT", "reserved_host_cpus", "2.5"),
    ("DEFAULT", "cpu_allocation_ratio", "-0.5"),
    ("DEFAULT", "ram_allocation_ratio", "lots"),
    ("DEFAULT", "initial_disk_allocation_ratio", "-1"),
    ("DEFAULT", "reserved_huge_pages", "node:0,size"),
    ("DEFAULT", "host", "$nope"),
    ("compute", "packing_host_numa_cells_allocation_strategy", "maybe"),
    ("placement", "mode", "bogus"),
    ("placement", "claim_retries", "-1"),
    ("placement", "claim_retries", "0"),
    ("placement", "resync_interval", "-5"),
    ("placement", "connect_retries", "-3"),
    ("placement", "status_code_retry_delay", "-1"),
    ("placement", "timeout", "0"),
    ("mdev_nvidia-222", "max_instances", "0"),
    ("mdev_nvidia-222", "mdev_class", LONG_CLASS),
]


@pytest.mark.parametrize(
    "group,option,value",
    BAD_VALUES,
    ids=[f"{o}={v[:12]}" for _, o, v in BAD_VALUES],
)
def test_bad_option_value_is_exit_2_naming_it(
    cli, tmp_path, group, option, value
):
    extra = tmp_path / "extra.conf"
    extra.write_text(f"[{group}]\n{option} = {value}\n")
    status, out, err = cli(
        "validate", "--format", "json", config=[BUNDLE_CONF, extra]
    )
    assert status == 2, (out, err)
    [error] = out["errors"]
    key = f"[{group}] {option}"
    assert error["code"] == "config.invalid-value"
    assert (error["key"], error["value"]) == (key, value)
    assert key in error["message"] and repr(value) in error["message"]
    assert str(extra) in error["message"]
    assert "internal" not in err and "Traceback" not in err


def test_a_bad_value_in_text_output(cli, tmp_path):
    extra = tmp_path / "extra.conf"
    extra.write_text("[placement]\nmode = bogus\n")
    # a command that reads [placement] mode only after opening libvirt
    status, out, err = cli("providers", config=[BUNDLE_CONF, extra])
    assert status == 2
    assert err.startswith("error [config.invalid-value]: [placement] mode")
    assert "'bogus'" in err and "one of embedded, remote" in err
    assert out == ""


# (file text, code, key, value): a legacy name beside its current one
LEGACY = [
    (
        "[devices]\nenabled_vgpu_types = nvidia-35\n",
        "config.legacy-option-conflict",
        "[devices] enabled_mdev_types",
        "nvidia-35",
    ),
    (
        "[vgpu_nvidia-222]\ndevice_addresses = 0000:86:00.0\n",
        "config.legacy-group-conflict",
        "[mdev_nvidia-222]",
        "[vgpu_nvidia-222]",
    ),
]


@pytest.mark.parametrize(
    "text,code,key,value", LEGACY, ids=[r[1] for r in LEGACY]
)
def test_legacy_and_current_names_both_set(
    cli, tmp_path, text, code, key, value
):
    extra = tmp_path / "extra.conf"
    extra.write_text(text)
    status, out, _ = cli(
        "validate", "--format", "json", config=[BUNDLE_CONF, extra]
    )
    assert status == 2
    [error] = out["errors"]
    assert (error["code"], error["key"], error["value"]) == (code, key, value)
    # both names, and both files, are in the message
    assert key.split()[-1] in error["message"]
    assert value.split(",")[0] in error["message"]
    assert str(extra) in error["message"] and BUNDLE_CONF in error["message"]


def test_legacy_name_that_agrees_is_accepted(cli, tmp_path):
    extra = tmp_path / "extra.conf"
    extra.write_text("[devices]\nenabled_vgpu_types = nvidia-222\n")
    status, out, _ = cli(
        "validate", "--format", "json", config=[BUNDLE_CONF, extra]
    )
    assert (status, out["errors"]) == (0, [])


# (file bytes, code, words of the message besides the file name)
BAD_FILES = [
    (b"\xff\xfe[DEFAULT]\nhost = \x80\x81\n", "config.file-not-text", "text"),
    (b"[DEFAULT]\nhost = h\n\xc3(\n", "config.file-not-text", "offset"),
    (b"garbage line\n", "config.file-unparsable", "garbage line"),
    (b"host = h\n", "config.file-unparsable", "Section"),
    (b"[DEFAULT\nhost = h\n", "config.file-unparsable", "section"),
]


@pytest.mark.parametrize(
    "content,code,words", BAD_FILES, ids=[r[2] for r in BAD_FILES]
)
def test_bad_file_is_exit_2_naming_it(cli, tmp_path, content, code, words):
    bad = tmp_path / "bad.conf"
    bad.write_bytes(content)
    for fmt in ("json", "text"):
        status, out, err = cli(
            "validate", "--format", fmt, config=[BUNDLE_CONF, bad]
        )
        assert status == 2
        if fmt == "text":
            assert err.startswith(f"error [{code}]: configuration file {bad}")
            assert "Traceback" not in err and "internal" not in err
            continue
        [error] = out["errors"]
        assert (error["code"], error["key"], error["value"]) == (
            code,
            str(bad),
            str(bad),
        )
        assert str(bad) in error["message"] and words in error["message"]


def test_binary_file_in_a_config_dir_is_named(cli, tmp_path):
    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    (conf_dir / "10-good.conf").write_text("[DEFAULT]\nhost = h\n")
    (conf_dir / "20-bad.conf").write_bytes(b"[DEFAULT]\nhost = \xff\n")
    status, out, _ = cli(
        "--config-dir",
        str(conf_dir),
        "validate",
        "--format",
        "json",
    )
    assert status == 2
    [error] = out["errors"]
    assert error["code"] == "config.file-not-text"
    assert error["key"] == str(conf_dir / "20-bad.conf")


def test_missing_config_dir(cli, tmp_path):
    missing = tmp_path / "nowhere"
    status, out, _ = cli(
        "--config-dir", str(missing), "validate", "--format", "json"
    )
    assert status == 2
    [error] = out["errors"]
    assert (error["code"], error["key"], error["value"]) == (
        "config.dir-missing",
        "--config-dir",
        str(missing),
    )
    assert str(missing) in error["message"]


@pytest.mark.parametrize("bundle", ["gpu8-2s", "nfv-snc-2s"])
def test_shipped_bundles_still_validate(cli, bundle):
    config = os.path.join(data.host_bundle(bundle), "nova-slices.conf")
    status, out, err = cli("validate", "--format", "json", config=config)
    assert (status, out["errors"]) == (0, []), err
