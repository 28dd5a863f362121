"""Placement URLs: every segment quoted, every identifier checked first.

The review found ``spawn --uuid ../traits/CUSTOM_EVIL`` creating a trait:
the uuid went into ``PUT /allocations/<uuid>`` unquoted.  These tests pin
the helper that builds every URL, the checks on the identifiers that go
into one, and (by reading the source) that no Placement call in the
package builds its URL any other way.
"""

import ast
import pathlib
import urllib.parse
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nova_slices.errors import PlacementError, RequestError
from nova_slices.placement import urls

ROOT = pathlib.Path(__file__).resolve().parents[2]
UUID = "4a8c9d3e-1f2b-4c5d-8e9f-0a1b2c3d4e5f"


# -- path(): every segment quoted -------------------------------------------

QUOTED = [
    # (segments, URL)
    (("resource_providers",), "/resource_providers"),
    (("allocations", UUID), f"/allocations/{UUID}"),
    (
        ("allocations", "../traits/CUSTOM_EVIL"),
        "/allocations/..%2Ftraits%2FCUSTOM_EVIL",
    ),
    (("allocations", "%2e%2e"), "/allocations/%252e%252e"),
    (("allocations", "..%2F..%2Ftraits"), "/allocations/..%252F..%252Ftraits"),
    (("traits", "CUSTOM_A?name=x#y"), "/traits/CUSTOM_A%3Fname%3Dx%23y"),
    (("traits", "a b;c&d"), "/traits/a%20b%3Bc%26d"),
    (("allocations", f"{UUID}\n"), f"/allocations/{UUID}%0A"),
    (("allocations", "\\..\\x"), "/allocations/%5C..%5Cx"),
    (("allocations", "é"), "/allocations/%C3%A9"),
    (
        ("resource_providers", UUID, "inventories"),
        f"/resource_providers/{UUID}/inventories",
    ),
]


@pytest.mark.parametrize(("segments", "expected"), QUOTED)
def test_path_quotes_each_segment(segments, expected):
    assert urls.path(*segments) == expected


@given(st.lists(st.text(min_size=1), min_size=1, max_size=4))
def test_path_keeps_each_segment_one_segment(segments):
    """Whatever the segments, the URL has exactly those segments: none
    adds a level, a query or a fragment, and each unquotes to itself."""
    if any(s in ("", ".", "..") for s in segments):
        with pytest.raises(PlacementError):
            urls.path(*segments)
        return
    url = urls.path(*segments)
    parsed = urllib.parse.urlsplit("http://placement" + url)
    assert parsed.query == "" and parsed.fragment == ""
    parts = url.split("/")[1:]
    assert [urllib.parse.unquote(p) for p in parts] == segments
    assert all(p not in (".", "..") for p in parts)


@pytest.mark.parametrize("segment", ["", ".", ".."])
def test_path_refuses_segments_quoting_cannot_neutralise(segment):
    with pytest.raises(PlacementError) as info:
        urls.path("allocations", segment)
    err = info.value
    assert err.exit_status == 2
    assert err.code == "placement.path-segment-invalid"
    assert err.value == segment
    assert repr(segment) in err.message


# -- consumer ids ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (UUID, UUID),
        # libvirt prints lower case; one guest, one spelling in Placement
        (UUID.upper(), UUID),
    ],
)
def test_consumer_uuid_accepts_the_canonical_form(value, expected):
    assert urls.consumer_uuid(value, "--uuid") == expected


BAD_UUIDS = [
    "../traits/CUSTOM_EVIL",
    "%2e%2e",
    "..",
    "",
    "not-a-uuid",
    f"{UUID}\n",
    f" {UUID}",
    f"{{{UUID}}}",
    f"urn:uuid:{UUID}",
    UUID.replace("-", ""),
    f"{UUID}/../../traits/CUSTOM_EVIL",
    UUID[:-1] + "g",
    UUID[:-1] + "\uff10",  # a full-width digit: isdigit(), not hex
    None,
]


@pytest.mark.parametrize("value", BAD_UUIDS)
def test_consumer_uuid_refuses(value):
    with pytest.raises(RequestError) as info:
        urls.consumer_uuid(value, "--uuid", code="spawn.uuid-invalid")
    err = info.value
    assert err.exit_status == 2
    assert err.code == "spawn.uuid-invalid"
    assert err.key == "--uuid"
    assert err.value == value
    assert "--uuid" in err.message and repr(value) in err.message


# -- resource class and trait names ------------------------------------------


class Name(NamedTuple):
    check: object
    value: object
    ok: bool


NAMES = [
    Name(urls.resource_class, "VGPU", True),
    Name(urls.resource_class, "CUSTOM_SLICE_1_GPU_V1", True),
    Name(urls.resource_class, "CUSTOM_" + "A" * 248, True),
    Name(urls.resource_class, "CUSTOM_" + "A" * 249, False),
    Name(urls.resource_class, "../traits/CUSTOM_EVIL", False),
    Name(urls.resource_class, "CUSTOM_A/B", False),
    Name(urls.resource_class, "custom_lower", False),
    Name(urls.resource_class, "NOT_STANDARD", False),
    Name(urls.resource_class, "CUSTOM_", False),
    Name(urls.resource_class, "CUSTOM_A\n", False),
    Name(urls.resource_class, "", False),
    Name(urls.trait, "COMPUTE_SOCKET_PCI_NUMA_AFFINITY", True),
    Name(urls.trait, "CUSTOM_NIC_VF", True),
    Name(urls.trait, "../resource_classes/CUSTOM_EVIL", False),
    Name(urls.trait, "CUSTOM_X?name=y", False),
    Name(urls.trait, "HW_NOT_A_TRAIT", False),
    Name(urls.trait, "CUSTOM_A\n", False),
    Name(urls.trait, None, False),
]


@pytest.mark.parametrize("row", NAMES, ids=lambda r: repr(r.value)[:40])
def test_names(row):
    if row.ok:
        assert row.check(row.value, key="[pci] device_spec") == row.value
        return
    with pytest.raises(PlacementError) as info:
        row.check(row.value, key="[pci] device_spec")
    err = info.value
    kind = "resource-class" if row.check is urls.resource_class else "trait"
    assert err.exit_status == 2
    assert err.code == f"placement.{kind}-invalid"
    assert err.key == "[pci] device_spec" and err.value == row.value
    assert "[pci] device_spec" in err.message
    assert repr(row.value) in err.message


# -- no Placement call builds its URL by hand --------------------------------

CALLS = {"get", "put", "post", "delete", "request"}
SOURCES = sorted(
    [
        *(ROOT / "nova_slices" / "placement").glob("*.py"),
        *(ROOT / "nova_slices" / "compute").glob("*.py"),
    ]
)


def _hand_built_urls(source):
    """(line, text) of every ``<...>client.<call>(url ...)`` whose URL is
    a string literal or an f-string rather than ``path(...)``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CALLS
            and node.args
        ):
            continue
        owner = ast.unparse(node.func.value)
        if not owner.endswith("client"):
            continue
        url = node.args[1] if node.func.attr == "request" else node.args[0]
        if isinstance(url, (ast.JoinedStr, ast.BinOp)) or (
            isinstance(url, ast.Constant) and isinstance(url.value, str)
        ):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_guard_sees_hand_built_urls():
    source = (
        "client.put(f'/allocations/{c}', {})\n"
        "self.client.get('/traits')\n"
        "rt.client.delete('/x/' + y)\n"
        "self.client.request('GET', f'/a/{b}')\n"
        "client.get(path('traits'))\n"
    )
    assert [line for line, _ in _hand_built_urls(source)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "source", SOURCES, ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_placement_url_comes_from_the_helper(source):
    assert _hand_built_urls(source.read_text()) == []
