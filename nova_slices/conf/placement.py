"""``[placement]`` options: Nova's keystoneauth options plus our own.

The keystoneauth options are the ones nova.conf already has in its
``[placement]`` group (session, auth, adapter; the version options are the
code's business, as in Nova), so that one file configures both.
"""

from keystoneauth1 import loading as ks_loading
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


def _session_opts():
    """keystoneauth's session options with their ranges, ``timeout`` with
    our default (an operator still sets ``[placement] timeout``)."""
    opts = _bounded(ks_loading.get_session_conf_options())
    cfg.set_defaults(opts, timeout=DEFAULT_TIMEOUT)
    return opts


def _adapter_opts():
    opts = _bounded(
        o
        for o in ks_loading.get_adapter_conf_options(include_deprecated=False)
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


def register_opts(conf):
    name = placement_group.name
    # a fresh OptGroup per ConfigOpts: an OptGroup object holds its
    # options' overrides, so sharing one would leak them between configs
    conf.register_group(cfg.OptGroup(name, title=placement_group.title))
    conf.register_opts(placement_opts, group=name)
    conf.register_opts(_session_opts(), group=name)
    ks_loading.register_auth_conf_options(conf, name)
    conf.register_opts(_adapter_opts(), group=name)
    # keystoneauth's adapter loader reads these; nobody may set them
    conf.register_opts(
        [cfg.Opt(v, type=_ignored) for v in _VERSION_OPTS], group=name
    )


def list_opts():
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
