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
import fcntl
import http.client
import logging
import os
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from wsgiref import simple_server

from nova_slices.errors import PlacementError

LOG = logging.getLogger(__name__)

HOST = "127.0.0.1"
DB_FILENAME = "placement.sqlite"
LOCK_FILENAME = "placement.lock"
#: How the subprocess server gets its database URL: not on the command line,
#: where ``ps`` would show the password.
DATABASE_URL_ENV = "NOVA_SLICES_PLACEMENT_DATABASE_URL"
MODES = ("in_thread", "subprocess")

#: Loggers of the embedded service that are kept at ``log_level``.
SERVICE_LOGGERS = (
    "placement",
    "alembic",
    "oslo_db",
    "oslo_policy",
    "routes",
    "microversion_parse",
)

#: Options applied to Placement's config unless overridden by ``options``.
#: ``max_retries``/``retry_interval``: oslo.db retries a failing database for
#: 10 x 10 s at startup by default; an embedded service should fail fast.
_DB_DEFAULTS = {"max_retries": 1, "retry_interval": 1}


def sqlite_url(path):
    """SQLAlchemy URL of a sqlite database file at ``path``."""
    return "sqlite:///" + os.path.abspath(path)


def is_sqlite(url):
    return url.split(":", 1)[0].split("+", 1)[0] == "sqlite"


def serialized(app, database_url, lock_path):
    """``app`` wrapped to take turns across processes when on sqlite.

    sqlite answers racing writers with HTTP 500 "database is locked"; a
    database server handles them itself, and serializing would hide the
    races that Placement's own concurrency control is there for.
    """
    if is_sqlite(database_url):
        return SerializingMiddleware(app, lock_path)
    return app


def redact_url(url):
    """``url`` with any password masked, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say so, do not echo secrets
        return "<unparsable database URL>"


def quiet_service_logging(level=logging.WARNING):
    """Keep the embedded service's own loggers at ``level``."""
    for name in SERVICE_LOGGERS:
        logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def file_lock(path):
    """Hold an exclusive ``flock`` on ``path`` (created if missing).

    Each call opens its own file description, so holders conflict whether
    they are in different processes or in different threads of one process.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class SerializingMiddleware:
    """WSGI middleware: one request at a time across every process.

    The lock is held while the application runs and its response body is
    produced, so the database work of a request never overlaps another's.
    """

    def __init__(self, application, lock_path):
        self.application = application
        self.lock_path = lock_path

    def __call__(self, environ, start_response):
        with file_lock(self.lock_path):
            result = self.application(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]


# --------------------------------------------------------------------------
# Placement configuration and application
# --------------------------------------------------------------------------


def build_config(database_url, conflict_retry_count=1, options=None):
    """A private ``ConfigOpts`` with Placement's options set for local use.

    ``options`` maps group name to ``{option: value}`` and overrides anything
    set here, e.g. ``{"placement": {"max_allocation_candidates": 100000}}``.
    """
    from oslo_config import cfg
    from placement import conf as placement_conf

    conf = cfg.ConfigOpts()
    placement_conf.register_opts(conf)
    values = {
        "api": {"auth_strategy": "noauth2"},
        "placement_database": dict(
            _DB_DEFAULTS, connection=database_url, sync_on_startup=False
        ),
        "placement": {
            "allocation_conflict_retry_count": int(conflict_retry_count)
        },
        # Hermetic: never pick up a policy file from ~ or /etc.
        "oslo_policy": {"policy_dirs": []},
    }
    for group, opts in (options or {}).items():
        values.setdefault(group, {}).update(opts)
    for group, opts in values.items():
        for name, value in opts.items():
            conf.set_override(name, value, group=group)
    # No command line, no config files: every value comes from above.
    conf([], project=None, default_config_files=[], default_config_dirs=[])
    return conf


def _db_options(conf):
    opts = dict(conf.placement_database.items())
    opts.pop("sync_on_startup", None)  # Placement's, not enginefacade's
    return opts


class _ProcessDatabase:
    """Placement's process-global database factory, shared by reference count.

    ``placement.db_api.placement_context_manager`` is a module global that
    every Placement object function is bound to, and ``db_api.configure`` can
    run only once per process.  We patch a freshly configured factory into it
    (``patch_factory``, the oslo.db hook meant for this) and restore the old
    one when the last user stops, so a process can serve one database, stop,
    and later serve another.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._url = None
        self._users = 0
        self._manager = None
        self._reset = None

    def acquire(self, conf):
        from placement import db_api

        url = conf.placement_database.connection
        with self._lock:
            if self._users:
                if url != self._url:
                    raise PlacementError(
                        "an embedded Placement over %s is already running in "
                        "this process; Placement's database layer is "
                        "process-global, so in_thread mode serves one "
                        "database per process (use mode='subprocess' for a "
                        "second one)" % redact_url(self._url),
                        code="placement.embedded-busy",
                        key="database_url",
                        value=redact_url(url),
                    )
                self._users += 1
                return False
            manager = db_api.placement_context_manager.make_new_manager()
            manager.configure(**_db_options(conf))
            self._reset = db_api.placement_context_manager.patch_factory(
                manager
            )
            self._manager = manager
            self._url = url
            self._users = 1
            _forget_process_caches()
            return True

    def release(self):
        with self._lock:
            if not self._users:
                return
            self._users -= 1
            if self._users:
                return
            self._reset()
            try:
                self._manager.dispose_pool()
            finally:
                self._manager = self._reset = self._url = None
                _forget_process_caches()


def _forget_process_caches():
    """Reset Placement's once-per-process state tied to one database."""
    from placement import policy
    from placement.objects import resource_class, trait

    trait._TRAITS_SYNCED = False
    resource_class._RESOURCE_CLASSES_SYNCED = False
    policy.reset()


_PROCESS_DB = _ProcessDatabase()


def sync_schema():
    """Migrate the configured database to Placement's head revision.

    Exactly what ``placement-manage db sync`` does; alembic makes it a no-op
    on a database already at head.
    """
    from placement.db.sqlalchemy import migration

    migration.upgrade("head")


def load_app(conf):
    """Migrate the schema and build Placement's WSGI application.

    The database factory must already be installed (``_PROCESS_DB``).
    ``loadapp`` then syncs standard traits and resource classes.
    """
    from placement import deploy

    sync_schema()
    return deploy.loadapp(conf)


# --------------------------------------------------------------------------
# WSGI servers
# --------------------------------------------------------------------------


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):
        LOG.debug("placement %s - %s", self.address_string(), format % args)


class _LoopbackServerMixin:
    request_queue_size = 128

    def server_bind(self):
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS
        # lookup that can stall for seconds on a host without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = self.server_address[1]
        self.setup_environ()

    def handle_error(self, request, client_address):
        LOG.debug("placement: error serving %s", client_address, exc_info=True)


class LoopbackWSGIServer(_LoopbackServerMixin, simple_server.WSGIServer):
    """Single-threaded: one request at a time."""


class ThreadingLoopbackWSGIServer(
    _LoopbackServerMixin, socketserver.ThreadingMixIn, simple_server.WSGIServer
):
    """One thread per request, at most ``max_threads`` at once."""

    daemon_threads = True

    def __init__(self, server_address, handler, max_threads=8):
        self._slots = threading.BoundedSemaphore(max(1, int(max_threads)))
        super().__init__(server_address, handler)

    def process_request(self, request, client_address):
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(app, threads=None):
    """Bind a server for ``app`` on 127.0.0.1, port chosen by the kernel."""
    if threads is None:
        server = LoopbackWSGIServer((HOST, 0), _QuietHandler)
    else:
        server = ThreadingLoopbackWSGIServer(
            (HOST, 0), _QuietHandler, max_threads=threads
        )
    server.set_app(app)
    return server


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
                _PROCESS_DB.release()

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
            _PROCESS_DB.acquire(conf)
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
        _PROCESS_DB.acquire(conf)
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
    _PROCESS_DB.release()
    with contextlib.suppress(OSError):
        os.unlink(args.port_file)  # stale if our parent died
    return 0


if __name__ == "__main__":
    sys.exit(main())
