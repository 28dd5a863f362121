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
  (``register_placement_opts`` registers them, ``list_opts`` lists them for
  the sample config).

The SDK's typed resources stop at old microversions, so callers make raw
calls through :func:`call`, which turns transport failures and unexpected
statuses into :class:`~nova_slices.errors.PlacementError` and hands every
expected status -- including 409, which generation conflicts produce and the
caller handles -- back as the ``requests.Response``.
"""

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from oslo_config import cfg

from nova_slices.errors import ConfigError, PlacementError

GROUP = "placement"
SERVICE_TYPE = "placement"
#: microversion this package needs at least (same_subtree)
MIN_MICROVERSION = "1.36"
#: newest microversion of openstack-placement 16.0.0
MAX_MICROVERSION = "1.39"
#: statuses :func:`call` returns by default
DEFAULT_OK = (200, 201, 204, 409)
#: seconds before an HTTP request to Placement is abandoned
DEFAULT_TIMEOUT = 60

EMBEDDED_USER = "admin"
EMBEDDED_ROLES = ("admin", "service")

# Versions are the code's business, not the operator's (as in Nova).
_ADAPTER_VERSION_OPTS = ("version", "min_version", "max_version")

_GROUP_TITLE = "Placement Service Options"
_GROUP_HELP = (
    "How this compute host reaches the Placement service (keystoneauth auth, "
    "session and adapter options)."
)


def _group(name=GROUP):
    # A new OptGroup each time: an OptGroup keeps the options registered
    # through it, so sharing one would leak them between ConfigOpts.
    return cfg.OptGroup(name, title=_GROUP_TITLE, help=_GROUP_HELP)


# --------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------


def _adapter_opts():
    opts = [
        o
        for o in ks_loading.get_adapter_conf_options(include_deprecated=False)
        if o.dest not in _ADAPTER_VERSION_OPTS
    ]
    cfg.set_defaults(
        opts,
        valid_interfaces=["internal", "public"],
        service_type=SERVICE_TYPE,
    )
    return opts


def _ignored(value):
    return None


def _dummy_opt(name):
    # keystoneauth's adapter loader reads these; nobody may set them.
    return cfg.Opt(name, type=_ignored)


def register_placement_opts(conf, group=GROUP):
    """Register keystoneauth session, auth and adapter options on ``group``."""
    conf.register_group(_group(group))
    ks_loading.register_session_conf_options(conf, group)
    ks_loading.register_auth_conf_options(conf, group)
    conf.register_opts(_adapter_opts(), group=group)
    for name in _ADAPTER_VERSION_OPTS:
        conf.register_opt(_dummy_opt(name), group=group)


def list_opts():
    """``[(group, opts)]`` for oslo-config-generator, as Nova lists them."""
    return [
        (
            _group(),
            ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options("password")
            + _adapter_opts(),
        )
    ]


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

    conn = connection.Connection(session=session, **kwargs)
    try:
        # The SDK discovers the API version (GET /) when it builds the proxy.
        return conn.placement
    except ksa_exc.ClientException as exc:
        raise _transport_error(
            exc, endpoint, "version discovery (GET /)"
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


# --------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------


def _endpoint_of(adapter):
    try:
        return adapter.get_endpoint()
    except Exception:  # the endpoint may be what cannot be reached
        return getattr(adapter, "endpoint_override", None)


def error_details(response):
    """Placement's error entries of ``response``: dicts with ``code``,
    ``detail``, ``title``, ``status`` and ``request_id`` (empty if the body
    is not Placement's error format)."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return []
    out = []
    for err in errors if isinstance(errors, list) else []:
        if not isinstance(err, dict):
            continue
        detail = str(err.get("detail") or "")
        # webob prefixes its generic explanation; keep Placement's reason.
        detail = detail.split("\n\n", 1)[-1].strip()
        out.append(
            {
                "code": err.get("code"),
                "detail": detail,
                "title": err.get("title"),
                "status": err.get("status"),
                "request_id": err.get("request_id"),
            }
        )
    return out


def error_code(response):
    """Placement's error code of ``response`` (e.g.
    ``placement.concurrent_update``), or None."""
    details = error_details(response)
    return details[0]["code"] if details else None


def _status_error(method, url, microversion, response):
    details = error_details(response)
    first = details[0] if details else {}
    placement_code = first.get("code")
    detail = first.get("detail") or response.text.strip()[:500]
    if placement_code and placement_code != "placement.undefined_code":
        code = placement_code
    else:
        code = "placement.unexpected-status"
    request_id = first.get("request_id") or response.headers.get(
        "x-openstack-request-id"
    )
    err = PlacementError(
        "Placement answered %s %s (microversion %s) with HTTP %d%s: %s%s"
        % (
            method,
            url,
            microversion,
            response.status_code,
            " %s" % code if code == placement_code else "",
            detail,
            " [request %s]" % request_id if request_id else "",
        ),
        code=code,
        key="%s %s" % (method, url),
        value=response.status_code,
    )
    err.status = response.status_code
    err.placement_code = placement_code
    err.detail = detail
    err.request_id = request_id
    err.response = response
    return err


def call(
    adapter, method, url, microversion, json=None, ok=DEFAULT_OK, **kwargs
):
    """One raw Placement request; returns the response if its status is in
    ``ok``.

    :raises PlacementError: ``placement.unreachable`` when no connection can
        be made (the message names the endpoint); for any status not in
        ``ok``, Placement's own error code when it has a specific one, else
        ``placement.unexpected-status``, with ``status``, ``placement_code``,
        ``detail`` and ``request_id`` attributes.
    """
    method = method.upper()
    if json is not None:
        kwargs["json"] = json
    try:
        response = adapter.request(
            url, method, microversion=microversion, raise_exc=False, **kwargs
        )
    except ksa_exc.ClientException as exc:
        raise _transport_error(
            exc, _endpoint_of(adapter), "%s %s" % (method, url)
        ) from exc
    if response.status_code not in ok:
        raise _status_error(method, url, microversion, response)
    return response


def _transport_error(exc, endpoint, action):
    """PlacementError for a keystoneauth failure before any HTTP status."""
    where = endpoint or "its endpoint"
    if isinstance(exc, ksa_exc.ConnectionError):
        # With keystone auth the failing connection may be to keystone: the
        # message of ``exc`` names the URL that could not be reached.
        return PlacementError(
            "cannot reach Placement at %s (%s): %s" % (where, action, exc),
            code="placement.unreachable",
            key="endpoint",
            value=where,
        )
    if isinstance(exc, ksa_exc.DiscoveryFailure):
        # The SDK's GET / got no answer, or no Placement version document.
        return PlacementError(
            "cannot reach Placement at %s: no version document answers GET "
            "/ there (is the service running, is the URL right?)" % where,
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
