"""Open the Placement this host reports to, per ``[placement] mode``."""

import logging
import os

from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from nova_slices.errors import ConfigError

GROUP = "placement"


def embedded_adapter(endpoint):
    """An adapter for a Placement running with ``auth_strategy=noauth2``.

    noauth2 wants a token and gives the admin role to ``admin``.
    """
    auth = token_endpoint.Token(endpoint, "admin")
    sess = ks_session.Session(auth=auth)
    return ks_adapter.Adapter(
        sess, service_type="placement", endpoint_override=endpoint
    )


def remote_adapter(conf):
    """An adapter built from nova.conf's ``[placement]`` options."""
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, GROUP)
        if auth is None:
            raise ValueError("[placement] auth_type is not set")
        sess = ks_loading.load_session_from_conf_options(
            conf, GROUP, auth=auth
        )
        return ks_loading.load_adapter_from_conf_options(
            conf, GROUP, session=sess, auth=auth
        )
    except Exception as exc:  # keystoneauth raises several unrelated types
        raise ConfigError(
            f"[placement] mode = remote, but the keystoneauth options are "
            f"incomplete: {exc}. Set auth_type, auth_url, username, "
            "password, project_name etc. as nova.conf's [placement] has them",
            code="config.placement-auth",
            key="[placement] auth_type",
        ) from None


def open_placement(conf):
    """Return (adapter, endpoint, embedded service or None).

    ``embedded`` starts the real Placement service in this process on
    127.0.0.1 over the database under ``[DEFAULT] state_path``; several
    processes may do so at once, their requests serialized by a file lock.
    ``remote`` uses the keystoneauth options of ``[placement]``, as
    nova-compute does.
    """
    if conf.placement.mode == "remote":
        adapter = remote_adapter(conf)
        return adapter, conf.placement.endpoint_override, None
    # imported here: commands that never talk to Placement stay fast
    from nova_slices.placement import embedded

    os.makedirs(conf.state_path, exist_ok=True)
    service = embedded.EmbeddedPlacement(
        conf.state_path,
        database_url=conf.placement.embedded_database_connection,
        # the service's own warnings (e.g. a claim that lost a race, which
        # we retry) are noise in a command's output; --debug shows them
        log_level=logging.DEBUG if conf.debug else logging.ERROR,
    )
    service.start()
    return embedded_adapter(service.endpoint), service.endpoint, service
