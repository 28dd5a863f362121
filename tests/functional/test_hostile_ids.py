"""Hostile identifiers on the command line never reach Placement's URLs.

The review's finding: ``spawn --uuid ../traits/CUSTOM_EVIL`` made the real
Placement answer 201 and create that trait.  Each row runs one command
with a hostile id against a host already reported to the real embedded
Placement, and checks the exit status, the error code, that the message
names the option and the value, and that Placement afterwards holds
exactly what it held before: the same providers (and generations), usages,
resource classes and traits.
"""

import shutil
from typing import NamedTuple

import pytest

from nova_slices import data
from nova_slices.cmd.main import main
from nova_slices.placement.client import PlacementClient, expect
from nova_slices.placement.embedded import EmbeddedPlacement
from nova_slices.placement.session import placement_adapter
from nova_slices.placement.urls import path
from tests.functional.conftest import BUNDLE_CONF

NFV_CONF = f"{data.host_bundle('nfv-snc-2s')}/nova-slices.conf"
UUID = "4a8c9d3e-1f2b-4c5d-8e9f-0a1b2c3d4e5f"
EVIL = "../traits/CUSTOM_EVIL"
SLICE = ["--slice-class", "CUSTOM_SLICE_1_GPU_V1"]
FLAVOR = ["--vcpus", "2", "--memory-mb", "512"]


class Row(NamedTuple):
    id: str
    config: str
    argv: list
    status: int
    code: str
    key: str
    value: object
    #: what the message must contain (default: the key and repr(value))
    names: tuple = ()


def _uuid_row(id_, value, config=BUNDLE_CONF, flags=SLICE):
    return Row(
        id_,
        config,
        ["spawn", "g1", *flags, "--uuid", value],
        2,
        "spawn.uuid-invalid",
        "--uuid",
        value,
    )


ROWS = [
    _uuid_row("uuid-traversal", EVIL),
    _uuid_row("uuid-encoded-dots", "%2e%2e"),
    _uuid_row("uuid-encoded-slash", "..%2Ftraits%2FCUSTOM_EVIL"),
    _uuid_row("uuid-dots", ".."),
    _uuid_row("uuid-empty", ""),
    _uuid_row("uuid-word", "not-a-uuid"),
    _uuid_row("uuid-trailing-newline", f"{UUID}\n"),
    _uuid_row("uuid-leading-space", f" {UUID}"),
    _uuid_row("uuid-braces", f"{{{UUID}}}"),
    _uuid_row("uuid-urn", f"urn:uuid:{UUID}"),
    _uuid_row("uuid-no-dashes", UUID.replace("-", "")),
    _uuid_row("uuid-then-traversal", f"{UUID}/../../traits/CUSTOM_EVIL"),
    _uuid_row("uuid-query", f"{UUID}?x=1"),
    _uuid_row("dynamic-uuid-traversal", EVIL, NFV_CONF, FLAVOR),
    _uuid_row("dynamic-uuid-encoded-dots", "%2e%2e", NFV_CONF, FLAVOR),
    Row(
        "spawn-name-traversal",
        BUNDLE_CONF,
        ["spawn", EVIL, *SLICE],
        2,
        "guest.name-invalid",
        "name",
        EVIL,
    ),
    Row(
        "destroy-name-traversal",
        BUNDLE_CONF,
        ["destroy", EVIL],
        2,
        "guest.name-invalid",
        "name",
        EVIL,
    ),
    Row(
        "destroy-name-empty",
        BUNDLE_CONF,
        ["destroy", ""],
        2,
        "guest.name-invalid",
        "name",
        "",
    ),
    # names without '/' are names libvirt could hold: looked up, not found
    Row(
        "destroy-name-encoded-dots",
        BUNDLE_CONF,
        ["destroy", "%2e%2e"],
        1,
        "guest.not-found",
        "name",
        "%2e%2e",
    ),
    Row(
        "destroy-name-dots",
        BUNDLE_CONF,
        ["destroy", ".."],
        1,
        "guest.not-found",
        "name",
        "..",
    ),
    Row(
        "slice-class-traversal",
        BUNDLE_CONF,
        ["spawn", "g1", "--slice-class", EVIL],
        2,
        "slice.unknown-class",
        "slice_class",
        EVIL,
        ("--slice-class", repr(EVIL)),
    ),
    Row(
        "extra-spec-class-traversal",
        BUNDLE_CONF,
        ["spawn", "g1", *SLICE, "--extra-spec", f"resources_X:{EVIL}=1"],
        2,
        "request.resource-class-invalid",
        f"resources_X:{EVIL}",
        "1",
        (f"resources_X:{EVIL}", repr(EVIL)),
    ),
    Row(
        "extra-spec-trait-traversal",
        BUNDLE_CONF,
        ["spawn", "g1", *SLICE, "--extra-spec", f"trait_X:{EVIL}=required"],
        2,
        "request.trait-invalid",
        f"trait_X:{EVIL}",
        "required",
        (f"trait_X:{EVIL}", repr(EVIL)),
    ),
]


def placement_state(state_dir):
    """What Placement holds: providers with generations, their usages,
    every resource class and every trait (GETs only)."""
    with EmbeddedPlacement(str(state_dir)) as service:
        client = PlacementClient(
            placement_adapter(service.endpoint), service.endpoint
        )

        def get(*segments, **params):
            return expect(client.get(path(*segments), params=params), 200)

        providers = get("resource_providers").body["resource_providers"]
        return {
            "providers": sorted(
                (p["uuid"], p["name"], p["generation"]) for p in providers
            ),
            "usages": {
                p["uuid"]: get("resource_providers", p["uuid"], "usages").body[
                    "usages"
                ]
                for p in providers
            },
            "classes": sorted(
                rc["name"]
                for rc in get("resource_classes").body["resource_classes"]
            ),
            "traits": sorted(get("traits").body["traits"]),
            "custom_traits": sorted(
                get("traits", name="startswith:CUSTOM_").body["traits"]
            ),
        }


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """Per host configuration: a state directory already synced to the
    embedded Placement, and what Placement then holds."""
    out = {}
    for config in (BUNDLE_CONF, NFV_CONF):
        state = tmp_path_factory.mktemp("reported")
        status = main(
            ["--config-file", config, "--state-path", str(state), "sync"]
        )
        assert status == 0
        out[config] = (state, placement_state(state))
    return out


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_hostile_id_is_refused_and_placement_unchanged(
    row, reported, state_path, cli
):
    source, before = reported[row.config]
    assert before["providers"], "the host was reported"
    shutil.copytree(source, state_path, dirs_exist_ok=True)

    status, out, _ = cli(*row.argv, "--format", "json", config=row.config)

    assert status == row.status, out
    [err] = out["errors"]
    assert err["code"] == row.code
    assert err["key"] == row.key
    assert err["value"] == row.value
    for needle in row.names or (row.key, repr(row.value)):
        assert needle in err["message"], (needle, err["message"])

    after = placement_state(state_path)
    assert after == before
    assert not [t for t in after["traits"] if "EVIL" in t]
    assert not [c for c in after["classes"] if "EVIL" in c]
