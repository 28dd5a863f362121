"""A thin JSON client over a keystoneauth adapter for Placement.

Every call names its microversion; 1.36 is the oldest that has everything
we need (``same_subtree``, consumer generations, ``mappings`` in
candidates).  Transport failures and server errors become PlacementError
with the endpoint and Placement's own error code; 4xx answers are returned
to the caller, because a 409 is information (a conflict to retry), not a
failure.
"""

import logging

from keystoneauth1 import exceptions as ks_exc

from nova_slices.errors import PlacementError
from nova_slices.placement.session import transport_error

LOG = logging.getLogger(__name__)
MICROVERSION = "1.36"


class Response:
    __slots__ = ("status", "body", "method", "url")

    def __init__(self, status, body, method, url):
        self.status = status
        self.body = body
        self.method = method
        self.url = url

    @property
    def error_code(self):
        """Placement's stable error code (``placement.concurrent_update``)."""
        errors = (self.body or {}).get("errors") or [{}]
        return errors[0].get("code")

    @property
    def detail(self):
        errors = (self.body or {}).get("errors") or [{}]
        return errors[0].get("detail") or str(self.body)


class PlacementClient:
    """Raw Placement calls with counting, for tests and benchmarks."""

    def __init__(self, adapter, endpoint=None):
        self.adapter = adapter
        self.endpoint = endpoint or _endpoint_of(adapter)
        self.calls = {"GET": 0, "PUT": 0, "POST": 0, "DELETE": 0}
        #: the session's limits, for the message of a call that timed out
        self.timeout = getattr(
            getattr(adapter, "session", None), "timeout", None
        )
        self.attempts = 1 + (getattr(adapter, "connect_retries", None) or 0)

    def request(
        self, method, url, json=None, params=None, microversion=MICROVERSION
    ):
        self.calls[method] = self.calls.get(method, 0) + 1
        try:
            resp = self.adapter.request(
                url,
                method,
                json=json,
                params=params,
                microversion=microversion,
                raise_exc=False,
            )
        except ks_exc.ClientException as exc:
            raise transport_error(
                exc,
                self.endpoint,
                f"{method} {url}",
                self.timeout,
                self.attempts,
            ) from None
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = {"errors": [{"detail": resp.text[:500]}]}
        result = Response(resp.status_code, body, method, url)
        if resp.status_code >= 500:
            raise PlacementError(
                f"{method} {url}: Placement answered {resp.status_code}: "
                f"{result.detail}",
                code="placement.server-error",
            )
        return result

    def get(self, url, params=None, **kw):
        return self.request("GET", url, params=params, **kw)

    def put(self, url, json, **kw):
        return self.request("PUT", url, json=json, **kw)

    def post(self, url, json, **kw):
        return self.request("POST", url, json=json, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)

    def writes(self):
        return self.calls["PUT"] + self.calls["POST"] + self.calls["DELETE"]


def _endpoint_of(adapter):
    try:
        return adapter.get_endpoint()
    except Exception:  # noqa: BLE001 - the endpoint may be what is broken
        return getattr(adapter, "endpoint_override", None)


def expect(resp, *statuses):
    """Return ``resp`` if its status is one of ``statuses``; else raise."""
    if resp.status in statuses:
        return resp
    raise PlacementError(
        f"{resp.method} {resp.url}: Placement answered {resp.status} "
        f"({resp.error_code or 'no code'}): {resp.detail}",
        code=resp.error_code or "placement.unexpected",
    )
