"""oslo.log's options, registered without importing oslo.log's logger.

``oslo_log.log`` imports its formatters, and with them oslo.serialization,
oslo.context, oslo.utils and the http/xmlrpc/ssl modules: a fifth of a
command's start-up.  Its options, though, live in ``oslo_log._options``
(the module oslo.log itself names as its ``oslo.config.opts`` entry
point), which costs little.  So every configuration registers and checks
``debug``, ``log_file``, ``log_config_append``... exactly as before, and
only a process that sets up logging imports ``oslo_log.log``
(:mod:`nova_slices.cmd.logsetup`).
"""

from oslo_log import _options

#: the lists ``oslo_log.log.register_options`` registers, CLI ones first
CLI_OPTS = (*_options.common_cli_opts, *_options.logging_cli_opts)
OPTS = (*_options.generic_log_opts, *_options.log_opts)


def register_options(conf):
    """Register oslo.log's options on ``conf``: the same Opt objects as
    ``oslo_log.log.register_options``, which a caller may still run before
    parsing (registering an identical option again is a no-op)."""
    conf.register_cli_opts(list(CLI_OPTS))
    conf.register_opts(list(OPTS))


def configured(conf):
    """Whether the configuration (files, environment, overrides) sets any
    logging option to other than oslo.log's default: a log file, syslog,
    debug, a format...  Only then can setting up logging fail or matter
    before something is logged."""
    return any(conf[opt.dest] != opt.default for opt in (*CLI_OPTS, *OPTS))
