"""``[placement]`` options: Nova's keystoneauth options plus our mode.

The keystoneauth options are the ones nova.conf already has in its
``[placement]`` group, so that the same file configures both.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

placement_group = cfg.OptGroup("placement", title="Placement service options")

placement_opts = [
    cfg.StrOpt(
        "mode",
        default="embedded",
        choices=[
            (
                "embedded",
                "start the real Placement service in-process on "
                "127.0.0.1 over sqlite under [DEFAULT] state_path",
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

_DEFAULT_INTERFACES = ["internal", "public"]


def register_opts(conf):
    # a fresh OptGroup per ConfigOpts: an OptGroup object holds its
    # options' overrides, so sharing one would leak them between configs
    conf.register_group(cfg.OptGroup(placement_group.name, title=placement_group.title))
    conf.register_opts(placement_opts, group=placement_group.name)
    ks_loading.register_session_conf_options(conf, placement_group.name)
    ks_loading.register_auth_conf_options(conf, placement_group.name)
    ks_loading.register_adapter_conf_options(
        conf, placement_group.name, include_deprecated=False
    )
    conf.set_default(
        "valid_interfaces", _DEFAULT_INTERFACES, group=placement_group.name
    )
    conf.set_default("service_type", "placement", group=placement_group.name)


def list_opts():
    ks_opts = (
        ks_loading.get_session_conf_options()
        + ks_loading.get_auth_common_conf_options()
        + ks_loading.get_auth_plugin_conf_options("password")
        + ks_loading.get_adapter_conf_options(include_deprecated=False)
    )
    # keep one copy of each name (auth opts overlap between helpers)
    seen, unique = set(), []
    for opt in ks_opts:
        if opt.dest not in seen:
            seen.add(opt.dest)
            unique.append(opt)
    return {placement_group: placement_opts + unique}
