"""Claims against the real Placement: races, lost allocations, outages."""

import socket

import pytest

from nova_slices.errors import NoCandidates, PlacementError
from nova_slices.placement import claims
from nova_slices.slices import encoding
from tests.functional.conftest import BUNDLE_CONF, remote_conf

ONE = "CUSTOM_SLICE_1_GPU_V1"
FOUR = "CUSTOM_SLICE_4_GPU_V1"


class RacingClient:
    """The real client, with a rival claim slipped in after candidates.

    This is the seam where a concurrent claimer really acts: between our
    GET /allocation_candidates and our PUT /allocations.
    """

    def __init__(self, client, rival, times=1):
        self.client = client
        self.rival = rival
        self.times = times

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get(self, url, params=None, **kw):
        resp = self.client.get(url, params=params, **kw)
        if url == "/allocation_candidates" and self.times:
            self.times -= 1
            self.rival()
        return resp


def _claim(client, tree, providers, rc, consumer):
    return claims.claim_slice(
        client,
        tree,
        providers,
        rc,
        consumer,
        "p" * 32,
        "u" * 32,
        sleep=lambda s: None,
    )


def test_allocation_lost_between_candidates_and_claim_is_retried(
    slice_host, placement
):
    tree, providers = slice_host
    rival_uuid = "00000000-0000-0000-0000-00000000beef"

    def rival():
        _claim(placement, tree, providers, ONE, rival_uuid)

    racing = RacingClient(placement, rival)
    mine = _claim(
        racing, tree, providers, ONE, "00000000-0000-0000-0000-000000000001"
    )
    theirs = claims.consumer_allocations(placement, rival_uuid)
    theirs_slice = encoding.slice_from_allocation(
        tree, theirs, providers.slice_of_provider()
    )
    # both got a slice, different ones, and Placement agrees with us
    assert theirs_slice == "1_1" and mine.slice_name == "1_2"
    assert (
        encoding.slice_from_allocation(
            tree,
            claims.consumer_allocations(placement, mine.consumer),
            providers.slice_of_provider(),
        )
        == "1_2"
    )


def test_last_slice_lost_to_a_race_is_no_candidates(slice_host, placement):
    tree, providers = slice_host
    _claim(
        placement,
        tree,
        providers,
        FOUR,
        "c0000000-0000-0000-0000-0000000000a1",
    )

    def rival():
        _claim(
            placement,
            tree,
            providers,
            FOUR,
            "c0000000-0000-0000-0000-0000000000a2",
        )

    racing = RacingClient(placement, rival)
    with pytest.raises(NoCandidates) as info:
        _claim(
            racing,
            tree,
            providers,
            FOUR,
            "c0000000-0000-0000-0000-0000000000a3",
        )
    assert info.value.code == "slice.lost-race"
    assert info.value.exit_status == 1
    assert (
        claims.consumer_allocations(
            placement, "c0000000-0000-0000-0000-0000000000a3"
        )
        == {}
    )


def test_endless_races_give_up_with_a_clear_error(slice_host, placement):
    tree, providers = slice_host
    counter = iter(range(100))

    def rival():
        # a rival takes and returns slices so candidates never run out,
        # but every one we chose is gone by the time we PUT
        consumer = f"d0000000-0000-0000-0000-{next(counter):012d}"
        _claim(placement, tree, providers, ONE, consumer)

    racing = RacingClient(placement, rival, times=3)
    with pytest.raises(PlacementError) as info:
        claims.claim_slice(
            racing,
            tree,
            providers,
            ONE,
            "e0000000-0000-0000-0000-000000000001",
            "p" * 32,
            "u" * 32,
            retries=3,
            sleep=lambda s: None,
        )
    assert info.value.code == "placement.claim-conflict"
    assert "3 attempts" in info.value.message


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_placement_unreachable_is_a_clear_error(tmp_path, cli):
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    config = remote_conf(
        tmp_path / "remote.conf", endpoint, "connect_retries = 0\n"
    )
    status, out, err = cli(
        "spawn",
        "g",
        "--slice-class",
        ONE,
        "--format",
        "json",
        config=[BUNDLE_CONF, config],
    )
    assert status == 1
    error = out["errors"][0]
    assert error["code"] == "placement.unreachable"
    assert f"127.0.0.1:{port}" in error["message"]
    assert "Traceback" not in err


def test_remote_mode_without_auth_is_a_config_error(tmp_path, cli):
    config = tmp_path / "remote.conf"
    config.write_text("[placement]\nmode = remote\n")
    status, out, _ = cli(
        "sync", "--format", "json", config=[BUNDLE_CONF, config]
    )
    assert status == 2
    assert out["errors"][0]["code"] == "config.placement-auth"
