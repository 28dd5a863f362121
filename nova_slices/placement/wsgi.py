"""The Placement WSGI application and a loopback server for it.

Pieces :mod:`nova_slices.placement.embedded` assembles: Placement's own
config on a private ``ConfigOpts``, its process-global database factory
(patched in and out so one process can serve one database after another),
schema migration, the request-serializing middleware for sqlite, and
wsgiref servers bound to 127.0.0.1 only.
"""

import contextlib
import fcntl
import logging
import os
import socketserver
import threading
from wsgiref import simple_server

from nova_slices.errors import PlacementError

LOG = logging.getLogger(__name__)

HOST = "127.0.0.1"

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


PROCESS_DB = _ProcessDatabase()


def sync_schema():
    """Migrate the configured database to Placement's head revision.

    Exactly what ``placement-manage db sync`` does; alembic makes it a no-op
    on a database already at head.
    """
    from placement.db.sqlalchemy import migration

    migration.upgrade("head")


def load_app(conf):
    """Migrate the schema and build Placement's WSGI application.

    The database factory must already be installed (``PROCESS_DB``).
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
