"""How this package talks to Placement: keystoneauth + openstacksdk.

Two ways to get a client, both returning an object with keystoneauth's raw
request methods that take an explicit microversion, e.g.
``adapter.get("/resource_providers", microversion="1.39")``:

* embedded (``placement_adapter(endpoint)``): the local Placement started by
  :mod:`nova_slices.placement.embedded` runs with ``auth_strategy = noauth2``,
  which wants an ``X-Auth-Token`` and takes the user from it; user ``admin``
  gets the admin role.  We also send ``X-Roles: admin,service`` (honoured
  only by noauth2), which mirrors nova-compute's service user: a few
  Placement 16 policies, notably ``placement:reshaper:reshape``, want the
  ``service`` role and refuse plain ``admin``.
* remote (``placement_adapter(conf=CONF)``): auth, session and adapter come
  from the keystoneauth options of the ``[placement]`` group, as in Nova
  (:mod:`nova_slices.conf.placement` declares them).

Both sessions have a timeout (``[placement] timeout``, default
:data:`~nova_slices.conf.placement.DEFAULT_TIMEOUT`): keystoneauth has none
by default, and a Placement that accepts the connection but never answers
must fail a command as ``placement.unreachable``, not hang it.

The SDK's typed resources stop at old microversions, so callers make raw
calls through :class:`nova_slices.placement.client.PlacementClient`.
"""

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from oslo_config import cfg

from nova_slices.conf.placement import DEFAULT_TIMEOUT
from nova_slices.errors import ConfigError, PlacementError

GROUP = "placement"
SERVICE_TYPE = "placement"

EMBEDDED_USER = "admin"
EMBEDDED_ROLES = ("admin", "service")

# --------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------


class NoAuthToken(token_endpoint.Token):
    """A fixed token and endpoint, plus the roles noauth2 should grant."""

    def __init__(self, endpoint, token=EMBEDDED_USER, roles=EMBEDDED_ROLES):
        super().__init__(endpoint, token)
        self.roles = tuple(roles)

    def get_headers(self, session, **kwargs):
        headers = super().get_headers(session, **kwargs)
        if self.roles:
            headers["X-Roles"] = ",".join(self.roles)
        return headers


def _sdk_placement(session, endpoint, **kwargs):
    from openstack import connection
    from openstack import exceptions as sdk_exc

    conn = connection.Connection(session=session, **kwargs)
    try:
        # The SDK discovers the API version (GET /) when it builds the proxy.
        return conn.placement
    except ksa_exc.ClientException as exc:
        raise transport_error(
            exc,
            endpoint,
            "version discovery (GET /)",
            getattr(session, "timeout", None),
        ) from exc
    except sdk_exc.SDKException as exc:
        raise PlacementError(
            "cannot use the Placement service at %s: %s"
            % (endpoint or "its endpoint", exc),
            code="placement.error",
        ) from exc


def placement_adapter(
    endpoint=None,
    conf_group=None,
    *,
    conf=None,
    token=EMBEDDED_USER,
    roles=EMBEDDED_ROLES,
    timeout=DEFAULT_TIMEOUT,
):
    """A Placement client supporting raw calls with a microversion.

    :param endpoint: URL of an embedded (noauth2) Placement; when given, no
        configuration is read.
    :param conf_group: config group holding the keystoneauth options
        (default ``placement``), remote mode only.
    :param conf: the ``ConfigOpts`` to read them from (options registered
        with :func:`register_placement_opts`), remote mode only.
    :returns: openstacksdk's placement ``Proxy`` (a keystoneauth
        ``Adapter``); for a group other than ``placement`` a keystoneauth
        ``Adapter``, since the SDK only reads the group named after the
        service.
    """
    if endpoint:
        sess = ks_session.Session(
            auth=NoAuthToken(endpoint.rstrip("/"), token, roles),
            timeout=timeout,
        )
        return _sdk_placement(sess, endpoint)
    if conf is None:
        raise TypeError(
            "placement_adapter() needs an endpoint (embedded "
            "Placement) or a conf (remote Placement)"
        )
    group = conf_group or GROUP
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, group)
        if auth is None:
            raise ksa_exc.MissingAuthPlugin("no auth_type is set")
        sess = ks_loading.load_session_from_conf_options(
            conf, group, auth=auth
        )
        if group == GROUP:
            return _sdk_placement(
                sess,
                conf[group].endpoint_override,
                oslo_conf=conf,
                service_types={SERVICE_TYPE},
            )
        return ks_loading.load_adapter_from_conf_options(
            conf, group, session=sess, auth=auth
        )
    except (ksa_exc.AuthPluginException, cfg.Error) as exc:
        raise ConfigError(
            "[%s] does not configure a usable Placement client: %s (set "
            "auth_type and its options, e.g. auth_type = password, auth_url, "
            "username, password, project_name, user_domain_name, "
            "project_domain_name)" % (group, exc),
            code="config.placement-auth",
            key="[%s] auth_type" % group,
        ) from exc


def _limits(timeout, attempts):
    """``[placement] timeout = 2 s, connect_retries = 1``: the options
    that bound how long a call may take, with their values."""
    text = "[placement] timeout = %s" % (
        "%g s" % timeout if timeout is not None else "none"
    )
    if attempts > 1:
        text += ", connect_retries = %d" % (attempts - 1)
    return text


def transport_error(exc, endpoint, action, timeout=None, attempts=1):
    """PlacementError for a keystoneauth failure before any HTTP status.

    ``timeout`` and ``attempts`` are the session's limits, named in the
    message so that an operator can tell a dead endpoint from a short
    timeout.
    """
    where = endpoint or "its endpoint"
    if isinstance(exc, ksa_exc.ConnectTimeout):
        return PlacementError(
            "Placement at %s did not answer %s in time (%s): %s"
            % (where, action, _limits(timeout, attempts), exc),
            code="placement.unreachable",
            key="endpoint",
            value=where,
        )
    if isinstance(exc, ksa_exc.ConnectionError):
        # With keystone auth the failing connection may be to keystone: the
        # message of ``exc`` names the URL that could not be reached.
        return PlacementError(
            "cannot reach Placement at %s (%s; %s): %s"
            % (where, action, _limits(timeout, attempts), exc),
            code="placement.unreachable",
            key="endpoint",
            value=where,
        )
    if isinstance(exc, ksa_exc.DiscoveryFailure):
        # The SDK's GET / was refused, timed out, or got no Placement
        # version document; keystoneauth keeps no cause to tell which.
        return PlacementError(
            "cannot reach Placement at %s: no version document came back "
            "from GET / (%s; is the service running, is the URL right?)"
            % (where, _limits(timeout, attempts)),
            code="placement.unreachable",
            key="endpoint",
            value=where,
        )
    if isinstance(exc, ksa_exc.EndpointNotFound):
        return PlacementError(
            "no Placement endpoint found (%s): %s; check [placement] "
            "valid_interfaces, region_name or endpoint_override"
            % (action, exc),
            code="placement.endpoint-not-found",
        )
    if isinstance(exc, ksa_exc.Unauthorized):
        return PlacementError(
            "authentication for Placement failed (%s): %s" % (action, exc),
            code="placement.unauthorized",
        )
    return PlacementError(
        "%s to Placement at %s failed: %s" % (action, where, exc),
        code="placement.error",
    )
