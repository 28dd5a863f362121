"""Open the Placement this host reports to, per ``[placement] mode``."""

import logging
import os

from nova_slices.placement.client import PlacementClient


def open_placement(conf):
    """Return (PlacementClient, embedded service or None).

    ``embedded`` starts the real Placement service in this process on
    127.0.0.1 over the database under ``[DEFAULT] state_path``; several
    processes may do so at once, their requests serialized by a file lock.
    ``remote`` uses the keystoneauth options of ``[placement]``, as
    nova-compute does.
    """
    # imported here: commands that never talk to Placement stay fast
    from nova_slices.conf.placement import ensure_keystoneauth_opts
    from nova_slices.placement import session

    ensure_keystoneauth_opts(conf)

    if conf.placement.mode == "remote":
        adapter = session.placement_adapter(conf=conf)
        return PlacementClient(adapter), None
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
    try:
        adapter = session.placement_adapter(
            service.endpoint, timeout=conf.placement.timeout
        )
    except BaseException:
        service.stop()
        raise
    return PlacementClient(adapter, service.endpoint), service
