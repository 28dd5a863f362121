"""``[placement]`` options: Nova's keystoneauth options plus our own.

The keystoneauth options are the ones nova.conf already has in its
``[placement]`` group (session, auth, adapter; the version options are the
code's business, as in Nova), so that one file configures both.

keystoneauth is imported only when its options are registered: its
loading module pulls in requests and its whole client (a tenth of a
second), which commands that read only files (``topology``, ``fit``)
must not pay for.  :func:`register_opts` with ``keystoneauth=False``
leaves them out; :func:`ensure_keystoneauth_opts` adds them before
Placement is opened, or at once when a configuration file (or an
``OS_PLACEMENT__*`` variable) sets one, so a bad value is still refused
at load time by every command.
"""

import os

from oslo_config import cfg

placement_group = cfg.OptGroup(
    "placement",
    title="Placement service options",
    help="Which Placement this host reports to, and how to reach it "
    "(keystoneauth auth, session and adapter options).",
)

placement_opts = [
    cfg.StrOpt(
        "mode",
        default="embedded",
        choices=[
            (
                "embedded",
                "start the real Placement service in-process on 127.0.0.1 "
                "over sqlite under [DEFAULT] state_path",
            ),
            (
                "remote",
                "talk to the deployment's Placement through the "
                "keystoneauth options of this group",
            ),
        ],
        help="Which Placement to report to.",
    ),
    cfg.StrOpt(
        "embedded_database_connection",
        secret=True,
        help="SQLAlchemy URL for the embedded Placement's database. "
        "Defaults to sqlite under [DEFAULT] state_path. A MariaDB URL "
        "needs allocation_conflict_retry_count = 1 on that Placement (see "
        "README).",
    ),
    cfg.IntOpt(
        "claim_retries",
        default=5,
        min=1,
        help="How many times a claim is retried with fresh allocation "
        "candidates after Placement answers a conflict (409), with "
        "jittered back-off.",
    ),
    cfg.IntOpt(
        "resync_interval",
        default=300,
        min=0,
        help="Seconds after which the local copy of this host's provider "
        "tree is refreshed from Placement even without a conflict. 0 "
        "refreshes before every sync.",
    ),
]

SERVICE_TYPE = "placement"
_VERSION_OPTS = ("version", "min_version", "max_version")
#: seconds before a request to Placement is abandoned.  keystoneauth's
#: own default is none: a Placement that accepts the connection and never
#: answers would hang every command and the periodic sync for ever.
DEFAULT_TIMEOUT = 60.0


#: ranges keystoneauth does not declare.  Without them a negative retry
#: count or delay is accepted and silently means "never retry", and a
#: timeout of 0 or less fails inside requests at the first call.
_BOUNDS = {
    "timeout": {"min": 0.001},
    "connect_retries": {"min": 0},
    "connect_retry_delay": {"min": 0.0},
    "status_code_retries": {"min": 0},
    "status_code_retry_delay": {"min": 0.0},
}


def _bounded(opts):
    """``opts`` with the ranges of :data:`_BOUNDS` declared on them."""
    out = []
    for opt in opts:
        bounds = _BOUNDS.get(opt.dest)
        if bounds is not None:
            kind = cfg.IntOpt if isinstance(opt, cfg.IntOpt) else cfg.FloatOpt
            opt = kind(
                opt.name,
                default=opt.default,
                help=opt.help,
                deprecated_opts=opt.deprecated_opts,
                **bounds,
            )
        out.append(opt)
    return out


def _ks_loading():
    from keystoneauth1 import loading

    return loading


def _session_opts():
    """keystoneauth's session options with their ranges, ``timeout`` with
    our default (an operator still sets ``[placement] timeout``)."""
    opts = _bounded(_ks_loading().get_session_conf_options())
    cfg.set_defaults(opts, timeout=DEFAULT_TIMEOUT)
    return opts


def _adapter_opts():
    opts = _bounded(
        o
        for o in _ks_loading().get_adapter_conf_options(
            include_deprecated=False
        )
        if o.dest not in _VERSION_OPTS
    )
    cfg.set_defaults(
        opts,
        valid_interfaces=["internal", "public"],
        service_type=SERVICE_TYPE,
    )
    return opts


def _ignored(value):
    return None


def register_opts(conf, keystoneauth=True):
    name = placement_group.name
    # a fresh OptGroup per ConfigOpts: an OptGroup object holds its
    # options' overrides, so sharing one would leak them between configs
    conf.register_group(cfg.OptGroup(name, title=placement_group.title))
    conf.register_opts(placement_opts, group=name)
    if keystoneauth:
        ensure_keystoneauth_opts(conf)


def has_keystoneauth_opts(conf):
    return "auth_type" in conf[placement_group.name]


def ensure_keystoneauth_opts(conf):
    """Register keystoneauth's ``[placement]`` options once (idempotent)."""
    if has_keystoneauth_opts(conf):
        return
    name = placement_group.name
    ks_loading = _ks_loading()
    conf.register_opts(_session_opts(), group=name)
    ks_loading.register_auth_conf_options(conf, name)
    conf.register_opts(_adapter_opts(), group=name)
    # keystoneauth's adapter loader reads these; nobody may set them
    conf.register_opts(
        [cfg.Opt(v, type=_ignored) for v in _VERSION_OPTS], group=name
    )


def sets_keystoneauth_opts(raw):
    """Whether ``raw`` (:func:`~nova_slices.conf.check.raw_values`) or the
    environment sets a ``[placement]`` key other than our own options."""
    own = {o.dest for o in placement_opts}
    for _path, section, key, _value in raw:
        if section.lower() == placement_group.name:
            if key.replace("-", "_") not in own:
                return True
    prefix = f"OS_{placement_group.name.upper()}__"
    return any(var.startswith(prefix) for var in os.environ)


def list_opts(keystoneauth=True):
    if not keystoneauth:
        return {placement_group: list(placement_opts)}
    ks_loading = _ks_loading()
    ks_opts = (
        _session_opts()
        + ks_loading.get_auth_common_conf_options()
        + ks_loading.get_auth_plugin_conf_options("password")
        + _adapter_opts()
    )
    seen, unique = set(), []
    for opt in ks_opts:
        if opt.dest not in seen:
            seen.add(opt.dest)
            unique.append(opt)
    return {placement_group: placement_opts + unique}
