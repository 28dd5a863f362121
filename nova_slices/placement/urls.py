"""Placement URLs, and the identifiers allowed into them.

A value spliced into a URL path unquoted is a second request path: an
instance uuid of ``../traits/CUSTOM_EVIL`` turned ``PUT /allocations/<id>``
into ``PUT /traits/CUSTOM_EVIL``, and Placement created the trait.  So
every path this package sends to Placement is built by :func:`path`, which
percent-quotes each segment (``/`` included) and refuses the segments that
quoting cannot neutralise (empty, ``.``, ``..``: servers and proxies
resolve them).  And identifiers are checked where they enter, so that a bad
one is refused as invalid input (exit 2) naming the flag or option, not
sent to Placement at all.

Pure: no I/O.
"""

import re
import urllib.parse
import uuid as uuidlib

import os_resource_classes as orc
import os_traits

from nova_slices.errors import PlacementError, RequestError

#: The canonical 8-4-4-4-12 form only.  ``uuid.UUID`` also accepts
#: ``{...}``, ``urn:uuid:...`` and bare hex, which Placement and libvirt
#: would each spell differently from us.
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}"
)
#: Placement's own schema for custom names (and its 255-character column)
_CUSTOM_RE = re.compile(r"CUSTOM_[A-Z0-9_]+")
MAX_NAME_LENGTH = 255
_STANDARD_TRAITS = frozenset(os_traits.get_traits())
_DOT_SEGMENTS = ("", ".", "..")


def path(*segments):
    """``/seg/seg...`` with every segment percent-quoted.

    A segment that stays a path operator after quoting (empty, ``.``,
    ``..``) is refused rather than sent: it would address another
    resource.
    """
    quoted = []
    for segment in segments:
        text = str(segment)
        if text in _DOT_SEGMENTS:
            raise PlacementError(
                f"refusing to send Placement a URL with the path segment "
                f"{text!r} (in {'/'.join(map(str, segments))!r}): it would "
                "address another resource",
                code="placement.path-segment-invalid",
                key="url",
                value=text,
            ).with_status(2)
        quoted.append(urllib.parse.quote(text, safe=""))
    return "/" + "/".join(quoted)


def consumer_uuid(value, key, code="request.uuid-invalid"):
    """``value`` as a canonical (lower-case) uuid, or a RequestError
    naming ``key``.

    Lower case because libvirt prints domain uuids in lower case and
    Placement compares consumer ids as strings: one guest, one spelling.
    """
    if not isinstance(value, str) or not _UUID_RE.fullmatch(value):
        raise RequestError(
            f"{key} {value!r} is not a uuid: give the 8-4-4-4-12 "
            "hexadecimal form, e.g. 4a8c9d3e-1f2b-4c5d-8e9f-0a1b2c3d4e5f "
            "(or omit it for a new one)",
            code=code,
            key=key,
            value=value,
        )
    return str(uuidlib.UUID(value))


def _check_name(value, kind, standard, key):
    if isinstance(value, str) and (
        value in standard
        or (_CUSTOM_RE.fullmatch(value) and len(value) <= MAX_NAME_LENGTH)
    ):
        return value
    raise PlacementError(
        f"{key or kind} {value!r} is not a valid Placement {kind}: a "
        f"standard one or CUSTOM_[A-Z0-9_]+ of at most {MAX_NAME_LENGTH} "
        "characters",
        code=f"placement.{kind.replace(' ', '-')}-invalid",
        key=key or kind,
        value=value,
    ).with_status(2)


def resource_class(value, key=None):
    """``value`` if it is a resource class name Placement accepts."""
    return _check_name(value, "resource class", orc.STANDARDS, key)


def trait(value, key=None):
    """``value`` if it is a trait name Placement accepts."""
    return _check_name(value, "trait", _STANDARD_TRAITS, key)
