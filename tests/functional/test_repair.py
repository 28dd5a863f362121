"""What the reconciler repairs on its own, what it never touches, the
``release`` command, and a host with a corrupted domain file.

On the shipped slice host with the real Placement service and libvirt's
test driver; the spawns and destroys in progress are real journal
entries held by this process (:mod:`nova_slices.compute.journal`).
"""

import json
import os
import shutil
import time
import uuid

import pytest

from nova_slices.cmd.runtime import Runtime
from nova_slices.compute.journal import Journal
from nova_slices.placement import claims
from tests.functional.conftest import BUNDLE_CONF, make_conf

ONE_GPU = "CUSTOM_SLICE_1_GPU_V1"


@pytest.fixture
def no_grace(tmp_path):
    path = tmp_path / "grace.conf"
    path.write_text("[DEFAULT]\norphan_allocation_grace_seconds = 0\n")
    return [BUNDLE_CONF, str(path)]


def stray_claim(state_path, consumer, config=(BUNDLE_CONF,)):
    """A 1-GPU slice claimed for ``consumer`` with no guest, as a spawn
    that got no further would leave it."""
    with Runtime(make_conf(state_path, config_files=config)) as rt:
        rt.driver.update_provider_tree()
        claim = claims.claim_slice(
            rt.client,
            rt.driver.tree,
            rt.driver.providers,
            ONE_GPU,
            consumer,
            "p",
            "u",
        )
        return claim.slice_name


def allocated(state_path):
    """{consumer: {provider uuid: resources}} on the host's providers."""
    with Runtime(make_conf(state_path)) as rt:
        return rt.driver.allocations_by_consumer()


def sync(cli, config=BUNDLE_CONF):
    status, out, err = cli("sync", "--format", "json", config=config)
    assert status == 0, err
    return out["repairs"]


def test_a_spawn_in_progress_is_never_released(cli, state_path, no_grace):
    consumer = str(uuid.uuid4())
    journal = Journal(str(state_path))
    with journal.entry("spawn", consumer, "busy"):
        stray_claim(state_path, consumer)
        repairs = sync(cli, no_grace)
        assert repairs["released"] == []
        (kept,) = repairs["kept"]
        assert kept["consumer"] == consumer
        assert "spawn of busy is in progress" in kept["reason"]
        assert consumer in allocated(state_path)
        # and `release` refuses it, whatever the flags
        status, out, _ = cli(
            "release", consumer, "--force", "--format", "json"
        )
        assert status == 1
        assert out["errors"][0]["code"] == "release.in-progress"
        assert consumer in out["errors"][0]["message"]
    # its process went away without finishing (the lock is free; the
    # entry stays, as after kill -9): released at once, grace or not
    repairs = sync(cli)
    assert [r["consumer"] for r in repairs["released"]] == [consumer]
    assert "died before it finished" in repairs["released"][0]["reason"]
    assert consumer not in allocated(state_path)
    assert journal.entries() == ()


def test_an_allocation_of_unknown_origin_waits_for_the_grace(
    cli, state_path, no_grace
):
    consumer = str(uuid.uuid4())
    stray_claim(state_path, consumer)
    for _ in range(2):  # the first sighting is kept, and remembered
        repairs = sync(cli)
        assert repairs["released"] == []
        assert [k["consumer"] for k in repairs["kept"]] == [consumer]
        assert (
            "released once 300 s have passed" in (repairs["kept"][0]["reason"])
        )
    seen_path = state_path / "orphan-allocations.json"
    seen = json.loads(seen_path.read_text())
    assert list(seen) == [consumer]
    # five minutes later (the record of the first sighting says so)
    seen_path.write_text(json.dumps({consumer: time.time() - 301}))
    repairs = sync(cli)
    assert [r["consumer"] for r in repairs["released"]] == [consumer]
    assert "grace 300 s" in repairs["released"][0]["reason"]
    assert allocated(state_path) == {}
    assert json.loads(seen_path.read_text()) == {}
    # with no grace at all, at first sight
    other = str(uuid.uuid4())
    stray_claim(state_path, other)
    repairs = sync(cli, no_grace)
    assert [r["consumer"] for r in repairs["released"]] == [other]


def test_a_guest_without_allocation_is_claimed_again_where_it_fits(
    cli, state_path
):
    for name in ("g1", "g2"):
        assert cli("spawn", name, "--slice-class", ONE_GPU)[0] == 0
    status, listing, _ = cli("list", "--format", "json")
    uuids = {g["name"]: g["instance_uuid"] for g in listing["guests"]}
    held = allocated(state_path)
    with Runtime(make_conf(state_path)) as rt:
        for name in ("g1", "g2"):
            claims.release(rt.client, uuids[name])
        # g2's slice is taken meanwhile by a consumer of unknown origin
        stray = str(uuid.uuid4())
        resp = rt.client.put(
            f"/allocations/{stray}",
            {
                "allocations": {
                    rp: {"resources": res}
                    for rp, res in held[uuids["g2"]].items()
                },
                "project_id": "p",
                "user_id": "u",
                "consumer_generation": None,
            },
        )
        assert resp.status == 204
    repairs = sync(cli)
    assert [r["name"] for r in repairs["reclaimed"]] == ["g1"]
    (failed,) = repairs["not_reclaimed"]
    assert failed["name"] == "g2" and "409" in failed["reason"]
    now = allocated(state_path)
    assert now[uuids["g1"]] == held[uuids["g1"]]
    assert uuids["g2"] not in now
    # reported, not hidden: g2 still runs without its allocation
    status, listing, _ = cli("list", "--format", "json")
    assert {
        (d["code"], d["instance_uuid"]) for d in listing["discrepancies"]
    } == {
        ("guest.no-allocation", uuids["g2"]),
        ("allocation.no-guest", stray),
    }
    # the operator releases the stray one; the next sync gives g2 its own
    status, out, err = cli("release", stray, "--format", "json")
    assert status == 0, err
    assert out["guest"] is None
    repairs = sync(cli)
    assert [r["name"] for r in repairs["reclaimed"]] == ["g2"]
    assert allocated(state_path) == {
        uuids[n]: held[uuids[n]] for n in ("g1", "g2")
    }


RELEASE_REFUSED = [
    # (id, consumer (a name: that guest's), exit status, code)
    ("not a uuid", "not-a-uuid", 2, "release.consumer-invalid"),
    ("path in it", "../../etc", 2, "release.consumer-invalid"),
    ("unknown consumer", str(uuid.uuid4()), 1, "release.not-found"),
    ("a guest's", "@g", 1, "release.guest-exists"),
]


@pytest.mark.parametrize(
    "label,consumer,status,code",
    RELEASE_REFUSED,
    ids=[r[0] for r in RELEASE_REFUSED],
)
def test_release_refusals(cli, label, consumer, status, code):
    status_g, view, err = cli(
        "spawn", "g", "--slice-class", ONE_GPU, "--format", "json"
    )
    assert status_g == 0, err
    if consumer == "@g":
        consumer = view["instance_uuid"]
    got, out, _ = cli("release", consumer, "--format", "json")
    assert got == status
    (error,) = out["errors"]
    assert error["code"] == code
    assert error["key"] == "CONSUMER_UUID"
    assert consumer in error["message"] and error["value"] == consumer
    # text form: one line naming the code, never a traceback
    got, _, err = cli("release", consumer)
    assert got == status
    assert err.startswith(f"error [{code}]:") and "Traceback" not in err


def test_release_force_puts_a_guests_allocation_right(cli, state_path):
    status, view, _ = cli(
        "spawn", "g", "--slice-class", ONE_GPU, "--format", "json"
    )
    consumer = view["instance_uuid"]
    before = allocated(state_path)[consumer]
    status, out, err = cli("release", consumer, "--force", "--format", "json")
    assert status == 0, err
    assert out["guest"] == "g"
    assert out["allocations"]["gpu8-2s_slice_" + view["slice"]] == {ONE_GPU: 1}
    assert consumer not in allocated(state_path)
    # the next state-changing command claims the guest's exact share
    repairs = sync(cli)
    assert [r["consumer"] for r in repairs["reclaimed"]] == [consumer]
    assert allocated(state_path)[consumer] == before


# -- a corrupted persisted domain file ---------------------------------


def truncate(path, keep):
    text = path.read_text()
    path.write_text(text[:keep] if keep > 0 else text[: len(text) // 2])


@pytest.mark.parametrize(
    "keep,uuid_known",
    [(-1, True), (40, False)],
    ids=["after-the-uuid", "before-the-uuid"],
)
def test_a_truncated_domain_file_leaves_the_other_guests_usable(
    cli, state_path, no_grace, keep, uuid_known
):
    views = {}
    for name in ("a", "b"):
        status, views[name], _ = cli(
            "spawn", name, "--slice-class", ONE_GPU, "--format", "json"
        )
        assert status == 0
    path = state_path / "libvirt" / "domains" / "a.xml"
    truncate(path, keep)
    consumer = views["a"]["instance_uuid"]

    # every command still works, and says which file and how to repair
    status, listing, err = cli("list", "--format", "json")
    assert status == 0, err
    assert [g["name"] for g in listing["guests"]] == ["b"]
    broken = [
        d
        for d in listing["discrepancies"]
        if d["code"] == "host.domain-unreadable"
    ]
    assert len(broken) == 1 and broken[0]["name"] == "a"
    assert str(path) in broken[0]["message"]
    assert "move it aside" in broken[0]["message"]
    assert (f"nova-slices release {consumer}" in broken[0]["message"]) == (
        uuid_known
    )
    for argv in (
        ("spawn", "a", "--slice-class", ONE_GPU),
        ("destroy", "a"),
    ):
        status, out, _ = cli(*argv, "--format", "json")
        assert status == 1, argv
        (error,) = out["errors"]
        assert error["code"] == "host.domain-unreadable"
        assert error["key"] == str(path) and error["value"] == "a"
        assert str(path) in error["message"]
    # a's allocation may be its guest's: never released while unreadable
    repairs = sync(cli, no_grace)
    assert repairs["released"] == []
    assert [k["consumer"] for k in repairs["kept"]] == [consumer]
    assert str(path) in repairs["kept"][0]["reason"]
    # the other guest and new ones are fine
    status, _, err = cli("spawn", "c", "--slice-class", ONE_GPU)
    assert status == 0, err
    assert cli("destroy", "b")[0] == 0

    # the repair the message gives: move it aside, release, reuse
    shutil.move(path, f"{path}.broken")
    status, out, err = cli("release", consumer, "--format", "json")
    assert status == 0, err
    status, listing, _ = cli("list", "--format", "json")
    assert listing["discrepancies"] == []
    assert cli("spawn", "a", "--slice-class", ONE_GPU)[0] == 0
    assert os.path.exists(f"{path}.broken")


@pytest.mark.parametrize(
    "value,why",
    [("-1", "greater than or equal to 0"), ("soon", "'soon'")],
)
def test_a_bad_grace_is_refused_naming_the_option(cli, tmp_path, value, why):
    path = tmp_path / "grace.conf"
    path.write_text(f"[DEFAULT]\norphan_allocation_grace_seconds = {value}\n")
    status, out, _ = cli(
        "sync", "--format", "json", config=[BUNDLE_CONF, str(path)]
    )
    assert status == 2
    (error,) = out["errors"]
    assert error["code"] == "config.invalid-value"
    assert error["key"] == "[DEFAULT] orphan_allocation_grace_seconds"
    assert error["key"] in error["message"] and why in error["message"]
