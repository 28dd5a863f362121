"""The command line's logging, set up at once or at the first record.

oslo.log is imported only when logging can matter
(:mod:`nova_slices.cmd.logsetup`): when the configuration sets a logging
option, or when something is logged.  Each case runs a command in a fresh
interpreter, then logs from the same process, and checks what an operator
sees: the same oslo.log lines, on stderr or in the log file.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import hostgen

_PROBE = """
import json, logging, sys
from nova_slices.cmd.main import main
argv, records = json.loads(sys.argv[1]), json.loads(sys.argv[2])
try:
    status = main(argv)
except SystemExit as exc:  # oslo.config's own refusal of a CLI option
    status = exc.code
before = "oslo_log.log" in sys.modules
for level, message in records:
    logging.getLogger("nova_slices.probe").log(level, message)
sys.stdout.write("\\n" + json.dumps(
    {"status": status, "oslo_before": before,
     "oslo_after": "oslo_log.log" in sys.modules}) + "\\n")
"""


@pytest.fixture(scope="module")
def host_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("host") / "capabilities.xml"
    path.write_text(hostgen.two_socket_512_threads())
    return str(path)


def _run(tmp_path, argv, records=(), conf_text=None):
    """(result dict, stderr) of ``argv`` then ``records`` logged."""
    head = ["--state-path", str(tmp_path / "state")]
    if conf_text is not None:
        path = tmp_path / "nova-slices.conf"
        path.write_text(conf_text)
        head += ["--config-file", str(path)]
    env = dict(os.environ, HOME=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join(
        [os.getcwd(), *filter(None, [env.get("PYTHONPATH")])]
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            json.dumps([*head, *argv]),
            json.dumps(list(records)),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


REQUEST = ["request", "--vcpus", "2", "--memory-mb", "512", "--format", "json"]


def test_first_record_sets_oslo_log_up_with_its_format(tmp_path):
    result, err = _run(
        tmp_path,
        REQUEST,
        [(30, "first warning"), (20, "not at info"), (40, "an error")],
    )
    assert result == {"status": 0, "oslo_before": False, "oslo_after": True}
    lines = err.splitlines()
    # oslo.log's context format: time, pid, level, logger, [-] context
    assert len(lines) == 2, err
    assert lines[0].endswith(" WARNING nova_slices.probe [-] first warning")
    assert lines[1].endswith(" ERROR nova_slices.probe [-] an error")


def test_nothing_logged_nothing_imported(tmp_path):
    result, err = _run(tmp_path, REQUEST)
    assert result["oslo_after"] is False
    assert err == ""


@pytest.mark.parametrize("command", ["topology", "fit"])
def test_debug_in_a_file_loads_and_sets_logging_up(
    command, host_file, tmp_path
):
    argv = [command, "--capabilities-xml", host_file]
    if command == "fit":
        argv += ["--vcpus", "4", "--memory-mb", "1024"]
    result, err = _run(
        tmp_path, argv, [(10, "dbg")], conf_text="[DEFAULT]\ndebug = true\n"
    )
    assert result["status"] == 0
    assert result["oslo_before"] is True
    # debug in a file logs at DEBUG as --debug does
    assert " DEBUG nova_slices.probe [-] dbg " in err.splitlines()[-1]


def test_debug_flag_logs_debug_records(tmp_path):
    result, err = _run(tmp_path, ["--debug", *REQUEST], [(10, "dbg")])
    assert result["oslo_before"] is True
    # at DEBUG oslo.log adds where the record was made
    assert " DEBUG nova_slices.probe [-] dbg " in err.splitlines()[-1]


def test_log_file_is_set_up_before_the_command(tmp_path, host_file):
    log = tmp_path / "logs" / "nova-slices.log"
    log.parent.mkdir()
    result, err = _run(
        tmp_path,
        ["topology", "--capabilities-xml", host_file],
        [(30, "to the file")],
        conf_text=f"[DEFAULT]\nlog_file = {log}\n",
    )
    assert result["status"] == 0
    assert result["oslo_before"] is True
    assert (
        log.read_text()
        .rstrip()
        .endswith(" WARNING nova_slices.probe [-] to the file")
    )
    # and on stderr too: the command line sets use_stderr's default
    assert "to the file" in err


def test_unusable_log_file_is_still_refused_before_the_command(
    tmp_path, host_file
):
    log = tmp_path / "missing-dir" / "nova-slices.log"
    result, err = _run(
        tmp_path,
        ["topology", "--capabilities-xml", host_file],
        conf_text=f"[DEFAULT]\nlog_file = {log}\n",
    )
    assert result["status"] == 2
    assert err.startswith("error [config.log-file-unusable]: ")
    assert f"[DEFAULT] log_file {log}: cannot be opened" in err
    assert "No such file or directory" in err
    assert "Traceback" not in err and "internal" not in err
    assert "host:" not in err


def test_bad_logging_value_is_still_refused(tmp_path, host_file):
    result, err = _run(
        tmp_path,
        ["topology", "--capabilities-xml", host_file],
        conf_text="[DEFAULT]\ndebug = notabool\n",
    )
    assert result["status"] == 2
    assert err.splitlines() == [
        "error [config.invalid]: [DEFAULT] debug = 'notabool' in the "
        "configuration files: Invalid Boolean value: notabool; valid: true "
        "or false"
    ]
