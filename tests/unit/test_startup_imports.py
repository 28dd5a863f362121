"""The light commands must not import what only other commands need.

``--help``, ``topology``, ``fit`` and ``request`` on a host given by
files start in a fraction of the time when keystoneauth (Placement),
libvirt, jinja2 (templates), the demo and oslo.log's logger stay
unimported; this pins that, without timing anything, in a fresh
interpreter per case.  oslo.log is set up only when the configuration
asks for logging, or at the first record: ``test_cli_logging.py``
checks that logging still works both ways.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import hostgen

HEAVY = (
    "keystoneauth1",
    "libvirt",
    "jinja2",
    "nova_slices.cmd.demo",
    "nova_slices.compute.factory",
    "oslo_utils.strutils",
    "os_traits",
    # formatters, oslo.serialization, oslo.context: set up only when used
    "oslo_log.log",
    "oslo_log.formatters",
    "oslo_serialization",
    "oslo_context",
)
#: what ``request`` needs no more than the above: it reads no host and no
#: slice tree
NOT_FOR_REQUEST = (
    "lxml.etree",
    "nova_slices.host.capabilities",
    "nova_slices.slices.tree",
)

_PROBE = """
import contextlib, io, json, sys
from nova_slices.cmd.main import main
argv = json.loads(sys.argv[1])
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        status = main(argv)
    except SystemExit as exc:  # --help
        status = exc.code
heavy = json.loads(sys.argv[2])
print(json.dumps({"status": status,
                  "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def host_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("host") / "capabilities.xml"
    path.write_text(hostgen.two_socket_512_threads())
    return str(path)


def _run(argv, state, heavy=HEAVY):
    env = dict(os.environ, HOME=state)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.getcwd(), *filter(None, [env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(heavy)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


FLAVOR = ["--vcpus", "8", "--memory-mb", "4096"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["topology", "--format", "json", "--capabilities-xml", "{host}"],
        ["topology", "--capabilities-xml", "{host}"],
        ["request", *FLAVOR, "--extra-spec", "hw:cpu_policy=dedicated"],
        ["fit", *FLAVOR, "--format", "json", "--capabilities-xml", "{host}"],
        # the embedded default's slice tree: no Placement client to read it
        ["flavor-specs", "--format", "json"],
    ],
    ids=[
        "help",
        "topology-json",
        "topology-text",
        "request",
        "fit",
        "flavor-specs",
    ],
)
def test_light_commands_import_nothing_heavy(argv, host_file, tmp_path):
    argv = [a.replace("{host}", host_file) for a in argv]
    heavy = HEAVY + (NOT_FOR_REQUEST if argv[0] == "request" else ())
    result = _run(
        ["--state-path", str(tmp_path / "state"), *argv],
        str(tmp_path),
        heavy,
    )
    assert result["status"] == 0
    assert result["loaded"] == []


def _load_conf_in_child(tmp_path, conf_text=None, env_extra=None):
    """``load_conf`` in a fresh interpreter: (error or value, whether
    keystoneauth1 was imported)."""
    args = []
    if conf_text is not None:
        path = tmp_path / "nova-slices.conf"
        path.write_text(conf_text)
        args = [str(path)]
    probe = (
        "import json, sys\n"
        "from nova_slices.cmd.runtime import load_conf\n"
        "try:\n"
        "    conf = load_conf(json.loads(sys.argv[1]))\n"
        "    out = conf.placement.mode\n"
        "except Exception as exc:\n"
        "    out = type(exc).__name__ + ': ' + str(exc)\n"
        "print(json.dumps([out, 'keystoneauth1' in sys.modules]))\n"
    )
    env = dict(os.environ, HOME=str(tmp_path), **(env_extra or {}))
    env["PYTHONPATH"] = os.pathsep.join(
        [os.getcwd(), *filter(None, [env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_keystoneauth_options_written_are_still_checked_at_load(tmp_path):
    out, loaded = _load_conf_in_child(
        tmp_path, "[placement]\nconnect_retries = -3\n"
    )
    assert out.startswith("ConfigError: [placement] connect_retries")
    assert loaded


def test_keystoneauth_options_from_the_environment_are_checked(tmp_path):
    out, _ = _load_conf_in_child(
        tmp_path, env_extra={"OS_PLACEMENT__TIMEOUT": "-1"}
    )
    assert out.startswith("ConfigError: [placement] timeout")


def test_own_placement_options_do_not_need_keystoneauth(tmp_path):
    out, loaded = _load_conf_in_child(tmp_path, "[placement]\nmode = remote\n")
    assert (out, loaded) == ("remote", False)
