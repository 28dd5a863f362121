"""Hostile input to ``nova-slices``: every refusal is ours, never "internal".

One row per case: the command line, the files it reads (usage files,
configurations, a state directory with something wrong in it), the exit
status, the error ``code``, the ``key`` (where the output is JSON) and
the strings the message must name: the option, file, key or value.
Rows run in this process through ``main()``; the ``SUBPROCESS`` rows run
``python -m nova_slices.cmd.main`` where what reaches the process matters
(bytes that are not UTF-8, the real exit status).
"""

import json
import os
import re
import subprocess
import sys
from typing import NamedTuple

import pytest

from nova_slices import data
from nova_slices.cmd.main import main
from tests.functional.conftest import BUNDLE_CONF

NFV_CONF = os.path.join(data.host_bundle("nfv-snc-2s"), "nova-slices.conf")
NFV_NODE = os.path.join(data.host_bundle("nfv-snc-2s"), "node.xml")
ONE = ("--slice-class", "CUSTOM_SLICE_1_GPU_V1")
FIT = ("fit", "--vcpus", "1", "--memory-mb", "512")
KEYSTONE = (
    "[placement]\nauth_type = password\nauth_url = http://127.0.0.1:1/v3\n"
    "username = nova\npassword = secret\nproject_name = service\n"
)
DIR = None  # in ``files``: make a directory at that path


class Row(NamedTuple):
    id: str
    argv: tuple
    status: int
    code: str
    names: tuple  # substrings of the message ({tmp} is the test's dir)
    key: str | None = None  # asserted where the output is JSON
    files: dict = {}  # path under {tmp} -> text, bytes, or DIR
    config: tuple = (BUNDLE_CONF,)  # absolute, or a path under {tmp}
    state: bool = True  # pass --state-path {tmp}/state


def usage_row(id, content, key, *names, raw=False):
    return Row(
        id,
        (*FIT, "--usage-json", "{tmp}/u.json", "--format", "json"),
        2,
        "usage.invalid",
        ("{tmp}/u.json", *names),
        key,
        files={"u.json": content if raw else json.dumps(content)},
    )


def name_row(id, name, *names):
    return Row(
        id,
        ("spawn", name, *ONE, "--format", "json"),
        2,
        "guest.name-invalid",
        names,
        "name",
    )


def config_row(id, text, argv, status, code, key, *names):
    return Row(
        id,
        (*argv, "--format", "json"),
        status,
        code,
        names,
        key,
        files={"n.conf": text},
        config=("n.conf",),
    )


ROWS = [
    # -- fit --usage-json: wrong shapes, negative counts, misspelt keys --
    usage_row("usage-not-an-object", [1, 2], "usage", "list"),
    usage_row("usage-cells-a-list", {"cells": [1]}, "cells", "[1]"),
    usage_row(
        "usage-negative-memory",
        {"cells": {"0": {"memory_mb": -4096}}},
        "cells.0.memory_mb",
        "-4096",
        ">= 0",
    ),
    usage_row(
        "usage-negative-pages",
        {"cells": {"1": {"pages": {"2048": -10}}}},
        "cells.1.pages.2048",
        "-10",
    ),
    usage_row(
        "usage-negative-pinned-cpu",
        {"cells": {"0": {"pinned_cpus": [-1]}}},
        "cells.0.pinned_cpus",
        "-1",
    ),
    usage_row(
        "usage-count-is-a-bool",
        {"cells": {"0": {"cpu_usage": True}}},
        "cells.0.cpu_usage",
        "True",
    ),
    usage_row(
        "usage-count-is-a-string",
        {"cells": {"0": {"memory_mb": "4096"}}},
        "cells.0.memory_mb",
        "'4096'",
    ),
    usage_row(
        "usage-misspelt-cell-key",
        {"cells": {"0": {"pined_cpus": [1]}}},
        "cells.0.pined_cpus",
        "pinned_cpus",
    ),
    usage_row("usage-misspelt-top-key", {"cels": {}}, "cels", "cells"),
    usage_row(
        "usage-cell-id-not-a-number",
        {"cells": {"zero": {}}},
        "cells.zero",
        "cells.zero",
    ),
    usage_row(
        "usage-page-size-not-a-number",
        {"cells": {"0": {"pages": {"2M": 1}}}},
        "cells.0.pages.2M",
        "2M",
    ),
    usage_row(
        "usage-cell-the-host-lacks",
        {"cells": {"9": {}}},
        "cells",
        "cell 9",
    ),
    usage_row(
        "usage-device-the-host-lacks",
        {"pci_devices_in_use": ["0000:00:00.9"]},
        "pci_devices_in_use",
        "0000:00:00.9",
    ),
    usage_row(
        "usage-devices-not-a-list",
        {"pci_devices_in_use": "0000:3b:00.0"},
        "pci_devices_in_use",
        "'0000:3b:00.0'",
    ),
    usage_row(
        "usage-key-twice",
        '{"cells": {"0": {}, "0": {"memory_mb": 1}}}',
        "--usage-json",
        "'0' appears twice",
        raw=True,
    ),
    usage_row(
        "usage-not-json", "{cells:", "--usage-json", "not JSON", raw=True
    ),
    usage_row(
        "usage-nested-too-deeply",
        "[" * 100000,
        "--usage-json",
        "not JSON",
        raw=True,
    ),
    # -- guest names: file names, control characters, bidi overrides -----
    name_row("name-longer-than-a-file-name", "é" * 200, "400 bytes", "243"),
    name_row("name-over-200-characters", "a" * 201, "201 characters"),
    name_row("name-with-tab", "a\tb", "'a\\tb'", "'\\t'"),
    name_row("name-with-newline", "a\nb", "'a\\nb'"),
    name_row("name-with-escape", "a\x1b[2Jb", "'\\x1b'"),
    name_row("name-with-bidi-override", "a\u202eb", "'\\u202e'"),
    name_row("name-with-slash", "a/b", "'a/b'", "'/'"),
    name_row("name-empty", "", "''", "empty"),
    # -- the state directory and its files --------------------------------
    Row(
        "state-path-is-a-file",
        ("list", "--format", "json"),
        2,
        "config.state-path-unusable",
        ("{tmp}/state",),
        "[DEFAULT] state_path",
        files={"state": "not a directory\n"},
    ),
    Row(
        "state-path-empty-in-config",
        ("list", "--format", "json"),
        2,
        "config.invalid-value",
        ("state_path", "''", "empty"),
        "[DEFAULT] state_path",
        files={"n.conf": "[DEFAULT]\nstate_path =\n"},
        config=(BUNDLE_CONF, "n.conf"),
        state=False,
    ),
    Row(
        "host-lock-is-a-directory",
        ("list", "--format", "json"),
        2,
        "config.state-path-unusable",
        ("{tmp}/state/host.lock", "Is a directory"),
        "[DEFAULT] state_path",
        files={"state/host.lock": DIR},
    ),
    Row(
        "mdev-record-a-list",
        ("mdevs", "--format", "json"),
        2,
        "host.mdev-registry-unreadable",
        ("{tmp}/state/mdevs.json", '{"mdevs"'),
        "[DEFAULT] state_path",
        files={"state/mdevs.json": "[1]\n"},
        config=(NFV_CONF,),
    ),
    Row(
        "mdev-record-misspelt-key",
        ("mdevs", "--format", "json"),
        2,
        "host.mdev-registry-unreadable",
        ("{tmp}/state/mdevs.json", "mdev u1", "parent, type"),
        "[DEFAULT] state_path",
        files={"state/mdevs.json": '{"mdevs": {"u1": {"tpye": "x"}}}'},
        config=(NFV_CONF,),
    ),
    # -- a key given twice: Nova's API takes a dict --------------------------
    Row(
        "extra-spec-twice",
        (
            "request",
            "--vcpus",
            "2",
            "--memory-mb",
            "512",
            "--extra-spec",
            "hw:cpu_policy=dedicated",
            "--extra-spec",
            "hw:cpu_policy=shared",
            "--format",
            "json",
        ),
        2,
        "request.key-repeated",
        ("--extra-spec", "hw:cpu_policy", "'dedicated'", "'shared'"),
        "hw:cpu_policy",
    ),
    Row(
        "image-property-twice-identical",
        (
            *FIT,
            "--image-property",
            "hw_mem_page_size=large",
            "--image-property",
            "hw_mem_page_size=large",
            "--format",
            "json",
        ),
        2,
        "request.key-repeated",
        ("--image-property", "hw_mem_page_size", "2 times"),
        "hw_mem_page_size",
    ),
    Row(
        "extra-spec-twice-on-spawn",
        (
            "spawn",
            "g",
            *ONE,
            "--extra-spec",
            "resources_NIC:CUSTOM_NIC_VF=1",
            "--extra-spec",
            "resources_NIC:CUSTOM_NIC_VF=2",
            "--format",
            "json",
        ),
        2,
        "request.key-repeated",
        ("resources_NIC:CUSTOM_NIC_VF", "'1'", "'2'"),
        "resources_NIC:CUSTOM_NIC_VF",
    ),
    # -- flags a command would silently ignore -----------------------------
    Row(
        "topology-nodedev-without-capabilities",
        ("topology", "--nodedev-xml", NFV_NODE, "--format", "json"),
        2,
        "cli.flag-not-applicable",
        ("--nodedev-xml", "--capabilities-xml"),
        "--nodedev-xml",
    ),
    Row(
        "fit-nodedev-without-capabilities",
        (*FIT, "--nodedev-xml", NFV_NODE, "--format", "json"),
        2,
        "cli.flag-not-applicable",
        ("--nodedev-xml", "--capabilities-xml"),
        "--nodedev-xml",
    ),
    Row(
        "spawn-disk-gb-on-a-slice-host",
        ("spawn", "g", *ONE, "--disk-gb", "0", "--format", "json"),
        2,
        "spawn.flag-not-applicable",
        ("--disk-gb", "slice_spec"),
        "--disk-gb",
    ),
    Row(
        "demo-with-state-path",
        ("demo",),
        2,
        "cli.flag-not-applicable",
        ("--state-path", "temporary"),
    ),
    Row(
        "demo-host-with-config-file",
        ("demo", "--host", "nfv-snc-2s"),
        2,
        "cli.flag-not-applicable",
        ("--config-file", "--host"),
        state=False,
    ),
    # -- configuration: text, and failing closed ----------------------------
    config_row(
        "config-not-utf8",
        b"[DEFAULT]\n\xff\xfe = 1\n",
        ("topology",),
        2,
        "config.file-not-text",
        None,
        "{tmp}/n.conf",
        "utf-8",
    ),
    config_row(
        "keystone-placement-no-uri-topology",
        KEYSTONE,
        ("topology",),
        2,
        "config.connection-uri-required",
        "[libvirt] connection_uri",
        "[libvirt] connection_uri",
        "{tmp}/n.conf",
        "qemu:///system",
        "host_bundle",
    ),
    config_row(
        "keystone-placement-no-uri-sync",
        KEYSTONE,
        ("sync",),
        2,
        "config.connection-uri-required",
        "[libvirt] connection_uri",
        "{tmp}/n.conf",
    ),
    config_row(
        "remote-placement-no-uri",
        "[placement]\nmode = remote\n",
        ("providers",),
        2,
        "config.connection-uri-required",
        "[libvirt] connection_uri",
        "{tmp}/n.conf",
    ),
    config_row(
        "cpu-sets-no-uri",
        "[compute]\ncpu_dedicated_set = 4-31\n",
        ("list",),
        2,
        "config.connection-uri-required",
        "[libvirt] connection_uri",
        "{tmp}/n.conf",
    ),
    config_row(
        "real-uri-no-placement-mode",
        "[libvirt]\nconnection_uri = qemu:///system\n",
        ("sync",),
        2,
        "config.placement-mode-required",
        "[placement] mode",
        "[placement] mode",
        "qemu:///system",
        "mode = remote",
    ),
    config_row(
        "demo-host-with-keystone-no-mode",
        "[libvirt]\nhost_bundle = gpu8-2s\n" + KEYSTONE,
        ("sync",),
        2,
        "config.placement-mode-required",
        "[placement] mode",
        "auth_type = password",
        "mode = remote",
    ),
]


def _materialize(tmp, row):
    for rel, content in row.files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is DIR:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    argv = []
    for config in row.config:
        argv += ["--config-file", str(tmp / config)]
    if row.state:
        argv += ["--state-path", str(tmp / "state")]
    return argv + [a.replace("{tmp}", str(tmp)) for a in row.argv]


def _error(out, err):
    """(code, key, message) from the JSON or the text output."""
    if out.lstrip().startswith("{"):
        [error] = json.loads(out)["errors"]
        return error["code"], error.get("key"), error["message"]
    match = re.search(r"^error \[([^\]]+)\]: (.*)$", err, re.M)
    assert match, (out, err)
    return match.group(1), None, match.group(2)


def _check(row, tmp, status, out, err):
    assert "Traceback" not in err and "internal" not in err, err
    assert status == row.status, (out, err)
    code, key, message = _error(out, err)
    assert code == row.code, message
    if row.key is not None:
        assert key == row.key, message
    for name in row.names:
        assert name.replace("{tmp}", str(tmp)) in message, message
    assert "\n" not in message.strip()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_refused_in_process(row, tmp_path, capsys):
    argv = _materialize(tmp_path, row)
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    _check(row, tmp_path, status, out, err)
    # no guest was defined; a bad configuration reported nothing either
    state = tmp_path / "state"
    domains = state / "libvirt" / "domains"
    given = {
        os.path.basename(p)
        for p in row.files
        if p.startswith("state/libvirt/domains/")
    }
    if domains.is_dir():
        assert set(os.listdir(domains)) == given
    if row.code.startswith(("config.", "request.", "guest.", "cli.")):
        assert not (state / "placement.sqlite").exists()


SUBPROCESS = [
    Row(
        "argument-not-utf8",
        (b"spawn", b"a\xffb", b"--slice-class", b"CUSTOM_SLICE_1_GPU_V1"),
        2,
        "cli.argument-not-utf8",
        ("'a\\udcffb'", "UTF-8"),
    ),
    Row(
        "keystone-placement-no-uri",
        ("list",),
        2,
        "config.connection-uri-required",
        ("[libvirt] connection_uri", "{tmp}/n.conf"),
        files={"n.conf": KEYSTONE},
        config=("n.conf",),
    ),
    Row(
        "state-path-is-a-file",
        ("sync",),
        2,
        "config.state-path-unusable",
        ("{tmp}/state", "not a directory"),
        files={"state": ""},
    ),
]


def _env(home):
    """No configuration or state of the user running the tests."""
    env = dict(os.environ, HOME=str(home))
    env.pop("XDG_STATE_HOME", None)
    return env


@pytest.mark.parametrize("row", SUBPROCESS, ids=[r.id for r in SUBPROCESS])
def test_refused_by_the_process(row, tmp_path):
    argv = [
        a if isinstance(a, bytes) else a.encode()
        for a in _materialize(tmp_path, row._replace(argv=()))
    ] + list(row.argv)
    proc = subprocess.run(
        [sys.executable.encode(), b"-m", b"nova_slices.cmd.main", *argv],
        capture_output=True,
        timeout=120,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    _check(
        row,
        tmp_path,
        proc.returncode,
        proc.stdout.decode(),
        proc.stderr.decode(),
    )


# -- explicit choices still run ------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[libvirt]\nhost_bundle = nfv-snc-2s\n",
        "[libvirt]\nconnection_uri = test://{node}\n",
        "[libvirt]\nhost_bundle = gpu8-2s\n[placement]\nmode = embedded\n",
    ],
    ids=["host-bundle", "test-driver-uri", "bundle-and-embedded"],
)
def test_an_explicit_demo_host_runs(text, tmp_path, capsys):
    config = tmp_path / "n.conf"
    config.write_text(text.replace("{node}", NFV_NODE))
    status = main(
        [
            "--config-file",
            str(config),
            "--state-path",
            str(tmp_path / "state"),
            "topology",
            "--format",
            "json",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert json.loads(out)["sockets"] == [0, 1]


def test_no_configuration_at_all_is_the_embedded_default(tmp_path):
    # what `nova-slices demo` relies on: no file anywhere, the shipped
    # bundle's own configuration, which names its host_bundle
    proc = subprocess.run(
        [sys.executable, "-m", "nova_slices.cmd.main", "topology"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
