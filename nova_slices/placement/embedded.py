"""Run the real OpenStack Placement service on 127.0.0.1.

This is the embedded default of ``nova-slices`` and the Placement the
functional tests talk to: the unmodified ``openstack-placement`` WSGI
application (``placement.deploy.loadapp``) served by ``wsgiref`` on a free
loopback port, with ``[api] auth_strategy = noauth2`` and its own private
``oslo_config.cfg.ConfigOpts`` (the global ``CONF`` is never touched).
Clients reach it over HTTP exactly as they reach a remote Placement.

Two serving modes:

``in_thread``
    A single-threaded server in a daemon thread of this process.  Placement
    keeps its database engine in a process-global transaction factory, so
    one process serves one database at a time in this mode.

``subprocess``
    A separate Python process (``python -m nova_slices.placement.embedded``)
    with a multi-threaded server, so that requests genuinely race.  Used with
    MariaDB to exercise Placement's own concurrency control.

Several ``nova-slices`` processes may run at once over the same sqlite file,
and sqlite answers racing writers with HTTP 500 "database is locked".  So, in
both modes, over sqlite every request holds an exclusive ``flock`` on
``<state_path>/placement.lock``: all processes' Placement requests are
serialized.  Over a database server requests are not serialized.  Schema
migration at start-up holds the same lock whatever the database.

``[placement] allocation_conflict_retry_count`` defaults to 1 here: with
Placement's default of 10, racing claims over-commit on MariaDB (DESIGN 3.2).

The schema is migrated on start (``alembic upgrade head``, what
``placement-manage db sync`` does), which is a no-op on a current database.
"""

import argparse
import contextlib
import http.client
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from nova_slices.errors import PlacementError
from nova_slices.placement.wsgi import (
    HOST,
    PROCESS_DB,
    build_config,
    file_lock,
    load_app,
    make_server,
    quiet_service_logging,
    redact_url,
    serialized,
    sqlite_url,
)

LOG = logging.getLogger(__name__)

DB_FILENAME = "placement.sqlite"
LOCK_FILENAME = "placement.lock"
#: How the subprocess server gets its database URL: not on the command line,
#: where ``ps`` would show the password.
DATABASE_URL_ENV = "NOVA_SLICES_PLACEMENT_DATABASE_URL"
MODES = ("in_thread", "subprocess")


# --------------------------------------------------------------------------
# The public object
# --------------------------------------------------------------------------


class EmbeddedPlacement:
    """The real Placement service on ``127.0.0.1``; a context manager.

    :param state_path: directory for the sqlite database, the request lock
        and (subprocess mode) the server's port and log files.
    :param database_url: SQLAlchemy URL; default sqlite
        ``<state_path>/placement.sqlite``.
    :param mode: ``"in_thread"`` or ``"subprocess"``.
    :param threads: request threads of the subprocess server.
    :param conflict_retry_count: ``[placement]
        allocation_conflict_retry_count``; 1 avoids over-commit on MariaDB.
    :param options: extra Placement options, ``{group: {name: value}}``.
    :param log_level: level of the service's own loggers (``None``: leave
        them alone).
    :param start_timeout: seconds to wait for a subprocess server.
    """

    def __init__(
        self,
        state_path,
        database_url=None,
        mode="in_thread",
        threads=8,
        conflict_retry_count=1,
        *,
        options=None,
        log_level=logging.WARNING,
        start_timeout=60.0,
    ):
        if mode not in MODES:
            raise PlacementError(
                "unknown embedded Placement mode %r; valid modes: %s"
                % (mode, ", ".join(MODES)),
                code="placement.embedded-invalid",
                key="mode",
                value=mode,
            )
        self.state_path = os.path.abspath(state_path)
        self.database_url = database_url or sqlite_url(
            os.path.join(self.state_path, DB_FILENAME)
        )
        self.mode = mode
        self.threads = int(threads)
        self.conflict_retry_count = int(conflict_retry_count)
        self.options = options or {}
        self.log_level = log_level
        self.start_timeout = float(start_timeout)
        self.lock_path = os.path.join(self.state_path, LOCK_FILENAME)
        #: seconds the last ``start()`` took
        self.startup_seconds = None
        #: subprocess mode: file receiving the server's stderr
        self.log_path = None
        self._port = None
        self._server = None
        self._thread = None
        self._holds_db = False
        self._process = None
        self._port_file = None

    # -- public API --------------------------------------------------------

    @property
    def endpoint(self):
        """``http://127.0.0.1:PORT`` of the running service."""
        if self._port is None:
            raise PlacementError(
                "the embedded Placement service is not running",
                code="placement.embedded-not-running",
            )
        return "http://%s:%d" % (HOST, self._port)

    @property
    def running(self):
        return self._port is not None

    def start(self):
        if self.running:
            return self
        started = time.monotonic()
        try:
            os.makedirs(self.state_path, exist_ok=True)
        except OSError as exc:
            raise self._start_error(
                "cannot create state directory %s: %s"
                % (self.state_path, exc.strerror)
            ) from exc
        if self.mode == "in_thread":
            self._start_in_thread()
        else:
            self._start_subprocess()
        self.startup_seconds = time.monotonic() - started
        LOG.debug(
            "embedded Placement at %s started in %.3f s",
            self.endpoint,
            self.startup_seconds,
        )
        return self

    def stop(self):
        try:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._thread.join(timeout=10)
            if self._process is not None:
                self._stop_subprocess()
        finally:
            self._server = self._thread = self._process = None
            self._port = None
            if self._holds_db:
                self._holds_db = False
                PROCESS_DB.release()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def __repr__(self):
        return "<EmbeddedPlacement %s %s %s>" % (
            self.mode,
            redact_url(self.database_url),
            self.endpoint if self.running else "stopped",
        )

    # -- in_thread ---------------------------------------------------------

    def _start_error(self, reason):
        return PlacementError(
            "cannot start the embedded Placement service over %s: %s"
            % (redact_url(self.database_url), reason),
            code="placement.embedded-start-failed",
            key="database_url",
            value=redact_url(self.database_url),
        )

    def _start_in_thread(self):
        if self.log_level is not None:
            quiet_service_logging(self.log_level)
        try:
            conf = build_config(
                self.database_url, self.conflict_retry_count, self.options
            )
            PROCESS_DB.acquire(conf)
            self._holds_db = True
            with file_lock(self.lock_path):
                app = load_app(conf)
            self._server = make_server(
                serialized(app, self.database_url, self.lock_path)
            )
        except PlacementError:
            self.stop()
            raise
        except Exception as exc:
            self.stop()
            raise self._start_error(_describe(exc)) from exc
        self._port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="embedded-placement-%d" % self._port,
            daemon=True,
        )
        self._thread.start()

    # -- subprocess --------------------------------------------------------

    def _start_subprocess(self):
        fd, self._port_file = tempfile.mkstemp(
            dir=self.state_path, prefix="placement-", suffix=".port"
        )
        os.close(fd)
        os.unlink(self._port_file)  # the child creates it when ready
        self.log_path = self._port_file[: -len(".port")] + ".log"
        cmd = [
            sys.executable,
            "-m",
            "nova_slices.placement.embedded",
            "--state-path",
            self.state_path,
            "--threads",
            str(self.threads),
            "--conflict-retry-count",
            str(self.conflict_retry_count),
            "--port-file",
            self._port_file,
        ]
        if self.log_level is not None:
            cmd += ["--log-level", logging.getLevelName(self.log_level)]
        for group, opts in self.options.items():
            for name, value in opts.items():
                cmd += ["--option", "%s.%s=%s" % (group, name, value)]
        env = dict(os.environ)
        root = os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        )
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p
        )
        env[DATABASE_URL_ENV] = self.database_url
        with open(self.log_path, "wb") as log:
            # stdin stays open as a lifeline: the child exits on its EOF,
            # so it never outlives this process.
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.state_path,
                close_fds=True,
            )
        deadline = time.monotonic() + self.start_timeout
        try:
            port = self._wait_for_port_file(deadline)
            self._wait_for_http(port, deadline)
        except PlacementError:
            self._kill_subprocess()
            raise
        self._port = port

    def _wait_for_port_file(self, deadline):
        while True:
            if self._process.poll() is not None:
                raise self._start_error(
                    "the server process exited with status %s%s"
                    % (self._process.returncode, self._stderr_tail())
                )
            try:
                with open(self._port_file) as f:
                    return int(f.read().strip())
            except (FileNotFoundError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise self._start_error(
                    "the server process did not report its port within "
                    "%.0f s%s" % (self.start_timeout, self._stderr_tail())
                )
            time.sleep(0.02)

    def _wait_for_http(self, port, deadline):
        while True:
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=5)
                try:
                    conn.request("GET", "/")
                    if conn.getresponse().status == 200:
                        return
                finally:
                    conn.close()
            except OSError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise self._start_error(
                    "the server process on port %d does not answer GET /%s"
                    % (port, self._stderr_tail())
                )
            time.sleep(0.02)

    def _stderr_tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read()[-8192:].decode("utf-8", "replace")
        except OSError:
            return ""
        tail = "\n".join(text.strip().splitlines()[-lines:])
        return (
            ("; its output ends (full log in %s):\n%s" % (self.log_path, tail))
            if tail
            else ""
        )

    def _stop_subprocess(self):
        proc = self._process
        if proc.poll() is None:
            try:
                proc.stdin.close()  # lifeline EOF: graceful shutdown
            except OSError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill_subprocess()
        self._cleanup_subprocess_files(keep_log=proc.returncode not in (0,))

    def _kill_subprocess(self):
        proc = self._process
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            proc.send_signal(sig)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(OSError):
            proc.stdin.close()
        self._cleanup_subprocess_files(keep_log=True)

    def _cleanup_subprocess_files(self, keep_log):
        with contextlib.suppress(OSError, TypeError):
            os.unlink(self._port_file)
        if not keep_log:
            with contextlib.suppress(OSError, TypeError):
                os.unlink(self.log_path)


def _describe(exc):
    """One line for an operator, without a traceback."""
    text = str(exc).strip().splitlines()
    text = text[0] if text else ""
    return (
        "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__
    )


# --------------------------------------------------------------------------
# Subprocess entry point: python -m nova_slices.placement.embedded
# --------------------------------------------------------------------------


def _parse_option(text):
    try:
        key, value = text.split("=", 1)
        group, name = key.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected GROUP.NAME=VALUE, got %r" % text
        ) from None
    return group, name, value


def _arg_parser():
    p = argparse.ArgumentParser(
        prog="python -m nova_slices.placement.embedded",
        description="Serve the real Placement service on 127.0.0.1 with a "
        "multi-threaded server (the subprocess mode of "
        "EmbeddedPlacement).",
    )
    p.add_argument("--state-path", required=True)
    p.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV),
        help="SQLAlchemy URL (default: $%s, else sqlite in the state path)"
        % DATABASE_URL_ENV,
    )
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--conflict-retry-count", type=int, default=1)
    p.add_argument(
        "--port-file",
        required=True,
        help="written with the port number once serving",
    )
    p.add_argument("--log-level", default="WARNING")
    p.add_argument(
        "--option",
        action="append",
        type=_parse_option,
        default=[],
        metavar="GROUP.NAME=VALUE",
    )
    return p


def _write_port_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def main(argv=None):
    args = _arg_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_service_logging(args.log_level)
    state_path = os.path.abspath(args.state_path)
    database_url = args.database_url or sqlite_url(
        os.path.join(state_path, DB_FILENAME)
    )
    options = {}
    for group, name, value in args.option:
        options.setdefault(group, {})[name] = value
    stop = threading.Event()
    try:
        os.makedirs(state_path, exist_ok=True)
        conf = build_config(database_url, args.conflict_retry_count, options)
        if args.threads > 1 and "max_pool_size" not in options.get(
            "placement_database", {}
        ):
            conf.set_override(
                "max_pool_size", args.threads, group="placement_database"
            )
        PROCESS_DB.acquire(conf)
        lock_path = os.path.join(state_path, LOCK_FILENAME)
        with file_lock(lock_path):
            app = load_app(conf)
        server = make_server(
            serialized(app, database_url, lock_path), threads=args.threads
        )
    except Exception as exc:
        print(
            "nova_slices.placement.embedded: cannot start Placement over "
            "%s: %s" % (redact_url(database_url), _describe(exc)),
            file=sys.stderr,
        )
        LOG.debug("startup failure", exc_info=True)
        return 1

    def _lifeline():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=_lifeline, daemon=True).start()
    serving = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        daemon=True,
    )
    serving.start()
    _write_port_file(args.port_file, server.server_port)
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    PROCESS_DB.release()
    with contextlib.suppress(OSError):
        os.unlink(args.port_file)  # stale if our parent died
    return 0


if __name__ == "__main__":
    sys.exit(main())
