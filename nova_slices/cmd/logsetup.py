"""The command line's logging: oslo.log's, set up when it can matter.

Importing ``oslo_log.log`` costs a fifth of a short command's start-up,
and ``topology``, ``fit`` or ``request`` on the default configuration
usually log nothing.  So:

* when the configuration sets any logging option (``--debug``, ``debug``,
  ``log_file``, syslog, a format...), oslo.log is set up at once, as
  before, so that a bad log file is still refused before the command
  runs;
* otherwise a stand-in handler waits on the root logger, and the first
  record that reaches it sets oslo.log up then, the same way, and is
  handed to oslo.log's handlers: an operator sees the same lines, in the
  same format, as when the setup was eager.  Setting up the defaults
  (a stream handler) cannot fail, so nothing is refused later than before.
"""

import logging

from nova_slices.conf import logging_opts
from nova_slices.errors import ConfigError

#: loggers of libraries that are chatty at INFO; kept at WARNING unless
#: --debug
NOISY = (
    "placement",
    "keystoneauth",
    "stevedore",
    "oslo_db",
    "oslo_policy",
    "alembic",
    "migrate",
    "routes",
)


def setup(conf, debug):
    """Set up logging for one command, now or at its first record."""
    if logging_opts.configured(conf):
        _setup_now(conf, debug)
        return
    _set_levels(debug)
    root = logging.getLogger()
    # as oslo.log's setup would: a previous setup's handlers (a second
    # command in one process) must not print what the new one prints
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Deferred(conf, debug))


def _setup_now(conf, debug):
    from oslo_log import formatters
    from oslo_log import log as oslo_logging

    # what oslo_log.log.register_options does besides registering the
    # options, which logging_opts did before parsing: formatters of a
    # log_config_append file read the configuration from here.  (Its
    # mutate hook is for services reloading on SIGHUP: no command mutates
    # its configuration.)
    formatters._store_global_conf(conf)
    # stdout carries results (JSON); logs go to stderr unless a file is set
    conf.set_default("use_stderr", True)
    try:
        oslo_logging.setup(conf, "nova-slices")
    except OSError as exc:
        path = exc.filename or conf.log_file
        raise ConfigError(
            f"[DEFAULT] log_file {path}: cannot be opened for writing: "
            f"{exc.strerror or exc}; give a file in an existing, writable "
            "directory (log_dir + log_file), or none to log to stderr",
            code="config.log-file-unusable",
            key="[DEFAULT] log_file",
            value=path,
        ) from None
    _set_levels(debug)


def _set_levels(debug):
    level = logging.DEBUG if debug else logging.WARNING
    logging.getLogger().setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


class _Deferred(logging.Handler):
    """Sets oslo.log up at the first record, then passes records on.

    oslo.log's setup removes every root handler, this one included; a
    record already on its way here is handed to the handlers it installed,
    as the root logger would have.
    """

    def __init__(self, conf, debug):
        super().__init__()
        self._conf = conf
        self._debug = debug
        self._done = False

    def emit(self, record):
        # under this handler's own lock (Handler.handle): once
        if not self._done:
            self._done = True
            _setup_now(self._conf, self._debug)
        logger = logging.getLogger(record.name)
        if not logger.isEnabledFor(record.levelno):
            return
        for handler in logging.getLogger().handlers:
            if handler is not self and record.levelno >= handler.level:
                handler.handle(record)
