"""A Placement that accepts connections and never answers fails a command
within the configured time, as ``placement.unreachable``; it never hangs.

keystoneauth has no timeout by default; the review found ``nova-slices
sync`` hanging for ever on such an endpoint.  Each test runs the real
command in a subprocess against a server on 127.0.0.1, measures its wall
time and compares it with a baseline measured in the same run: the same
command against a port where nothing listens (refused at once), which is
the cost of starting the command and failing.
"""

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from nova_slices.placement.client import PlacementClient
from nova_slices.placement.embedded import EmbeddedPlacement
from nova_slices.placement.session import placement_adapter
from tests.fixtures.scheduling import EXCLUSIVE
from tests.functional.conftest import BUNDLE_CONF, make_conf, remote_conf

# wall-clock bounds: see tests/fixtures/scheduling.py
pytestmark = EXCLUSIVE

#: seconds a command may take beyond baseline + timeout x attempts
#: (scheduling noise on a shared machine; far below the 60 s default and
#: the hang it replaces)
MARGIN = 3.0
#: the subprocess is killed (and the test fails) after this long
HANG = 90


@contextlib.contextmanager
def silent_server():
    """Accepts TCP connections (the kernel completes the handshake for
    the listen backlog) and never reads or answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield "http://127.0.0.1:%d" % sock.getsockname()[1]
    finally:
        sock.close()


VERSIONS = json.dumps(
    {
        "versions": [
            {
                "id": "v1.0",
                "min_version": "1.0",
                "max_version": "1.39",
                "status": "CURRENT",
                "links": [{"rel": "self", "href": ""}],
            }
        ]
    }
).encode()


@contextlib.contextmanager
def stalling_server():
    """Answers version discovery (GET /) like Placement, then never
    answers anything else: the first real call must time out, and each
    retry too."""
    release = threading.Event()
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self):
            if self.path == "/":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(VERSIONS)))
                self.end_headers()
                self.wfile.write(VERSIONS)
                return
            seen.append(f"{self.command} {self.path}")
            release.wait(HANG)
            self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = _any

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1], seen
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def closed_endpoint():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return "http://127.0.0.1:%d" % port


def run_sync(tmp_path, endpoint, extra):
    """``nova-slices sync`` against ``endpoint``: (status, error, secs)."""
    conf = remote_conf(tmp_path / "remote.conf", endpoint, extra)
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "nova_slices.cmd.main",
        "--config-file",
        BUNDLE_CONF,
        "--config-file",
        str(conf),
        "--state-path",
        str(state),
        "sync",
        "--format",
        "json",
    ]
    start = time.monotonic()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=HANG, env=dict(os.environ)
    )
    elapsed = time.monotonic() - start
    assert "Traceback" not in proc.stderr, proc.stderr
    [error] = json.loads(proc.stdout)["errors"]
    return proc.returncode, error, elapsed


@pytest.fixture
def baseline(tmp_path):
    """Seconds the command takes to start and fail against a refused
    port."""
    (tmp_path / "baseline").mkdir()
    endpoint = closed_endpoint()
    status, error, elapsed = run_sync(
        tmp_path / "baseline", endpoint, "timeout = 5\n"
    )
    assert (status, error["code"]) == (1, "placement.unreachable"), error
    assert endpoint in error["message"]
    assert "[placement] timeout = 5 s" in error["message"]
    return elapsed


def test_silent_placement_fails_sync_within_the_timeout(tmp_path, baseline):
    timeout, attempts = 2, 1
    with silent_server() as endpoint:
        status, error, elapsed = run_sync(
            tmp_path, endpoint, f"timeout = {timeout}\n"
        )
    assert status == 1
    assert error["code"] == "placement.unreachable"
    assert error["key"] == "endpoint" and error["value"] == endpoint
    assert endpoint in error["message"]
    assert f"[placement] timeout = {timeout} s" in error["message"]
    # the timeout is what ended it, and nothing waited longer
    assert elapsed >= timeout
    assert elapsed < baseline + timeout * attempts + MARGIN, (
        elapsed,
        baseline,
    )


def test_retried_call_still_ends_within_timeout_times_attempts(
    tmp_path, baseline
):
    """keystoneauth retries a timed-out call ``connect_retries`` times:
    the total stays timeout x attempts plus the retry delays."""
    timeout, retries, delay = 1, 2, 0.1
    with stalling_server() as (endpoint, seen):
        status, error, elapsed = run_sync(
            tmp_path,
            endpoint,
            f"timeout = {timeout}\nconnect_retries = {retries}\n"
            f"connect_retry_delay = {delay}\n",
        )
    attempts = 1 + retries
    assert status == 1
    assert error["code"] == "placement.unreachable"
    assert endpoint in error["message"]
    assert (
        f"[placement] timeout = {timeout} s, connect_retries = {retries}"
        in error["message"]
    )
    # one call, tried `attempts` times, each abandoned after the timeout
    assert len(seen) == attempts and len(set(seen)) == 1, seen
    assert elapsed >= timeout * attempts
    assert elapsed < baseline + timeout * attempts + delay * retries + MARGIN


@pytest.mark.parametrize("setting", ["timeout = 0", "timeout = -1"])
def test_non_positive_timeout_is_refused(tmp_path, setting):
    status, error, _ = run_sync(tmp_path, closed_endpoint(), setting + "\n")
    assert status == 2
    # the option's own minimum, checked when the configuration is loaded
    assert error["code"] == "config.invalid-value"
    assert error["key"] == "[placement] timeout"
    assert "[placement] timeout" in error["message"]
    assert setting.split(" = ")[1] in error["message"]
    assert "0.001" in error["message"]


def test_remote_placement_has_a_default_timeout(tmp_path, state_path):
    """Without ``[placement] timeout`` the session still has one."""
    with EmbeddedPlacement(str(state_path)) as service:
        conf = make_conf(
            state_path,
            config_files=(
                BUNDLE_CONF,
                str(remote_conf(tmp_path / "r.conf", service.endpoint)),
            ),
        )
        client = PlacementClient(placement_adapter(conf=conf))
        assert conf.placement.timeout == 60.0
        assert client.adapter.session.timeout == 60.0
        assert client.timeout == 60.0
        assert client.get("/").status == 200
