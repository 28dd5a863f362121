"""Several processes spawning at once never share a slice.

Each process is a real ``nova-slices spawn`` with its own libvirt
connection and its own Placement client; they race from the first sync to
the last define.
"""

import json
import os
import subprocess
import sys

import pytest

from nova_slices.cmd.runtime import Runtime
from nova_slices.placement.embedded import EmbeddedPlacement
from tests.fixtures.scheduling import EXCLUSIVE
from tests.functional.conftest import BUNDLE_CONF, make_conf, remote_conf

# process bursts: see tests/fixtures/scheduling.py
pytestmark = EXCLUSIVE

REQUESTS = (
    ["CUSTOM_SLICE_1_GPU_V1"] * 5
    + ["CUSTOM_SLICE_4_GPU_V1"] * 2
    + ["CUSTOM_SLICE_8_GPU_V1"]
)


def spawn_all(state_path, extra_config=(), requests=REQUESTS, extra_args=()):
    return spawn_processes(
        state_path,
        [BUNDLE_CONF, *extra_config],
        [["--slice-class", rc, *extra_args] for rc in requests],
    )


def spawn_processes(state_path, config, spawn_args):
    """Start ``nova-slices spawn g<i> <spawn_args[i]>`` processes at once
    and return each one's (exit status, JSON output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    args = []
    for path in config:
        args += ["--config-file", str(path)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nova_slices.cmd.main",
                *args,
                "--state-path",
                str(state_path),
                "spawn",
                f"g{i}",
                *extra,
                "--format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, extra in enumerate(spawn_args)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert "Traceback" not in err, err
        assert out.strip(), f"status {proc.returncode}, stderr: {err}"
        results.append((proc.returncode, json.loads(out)))
    return results


def check_no_conflicts(conf):
    with Runtime(conf) as rt:
        tree = rt.driver.tree
        usage = rt.driver.slice_usage()
        in_use = [
            name
            for name, consumers in usage.items()
            for res in consumers.values()
            if res.get(tree.slices[name].resource_class)
        ]
        assert len(in_use) == len(set(in_use)), in_use
        for name in in_use:
            assert not (tree.conflicts(name) & set(in_use)), in_use
        views, problems = rt.driver.guests()
        assert problems == []
        assert sorted(v.slice_name for v in views) == sorted(in_use)
        return in_use


def check_losers_had_no_room(conf, results, requests):
    """Every refused request lost fairly: no slice of its class is free.

    Whatever the interleaving (the 8-GPU guest may win first and fill the
    host on its own), a loser must never leave a usable slice behind.
    """
    with Runtime(conf) as rt:
        tree = rt.driver.tree
    in_use = {out["slice"] for status, out in results if status == 0}
    assert in_use, results
    for (status, out), rc in zip(results, requests, strict=True):
        if status == 0:
            continue
        if out["errors"][0]["code"] == "placement.claim-conflict":
            # bounded retries ran out under contention: refused loudly,
            # and the guest may be retried; room may well be left
            continue
        free = [
            s.name
            for s in tree.slices.values()
            if s.resource_class == rc
            and s.name not in in_use
            and not (tree.conflicts(s.name) & in_use)
        ]
        assert free == [], (rc, free, sorted(in_use))


def test_concurrent_spawns_on_embedded_sqlite(state_path):
    results = spawn_all(state_path)
    for status, out in results:
        assert status in (0, 1), out
        if status == 1:
            assert out["errors"][0]["code"] in (
                "slice.no-candidates",
                "slice.lost-race",
            )
    won = [out["slice"] for status, out in results if status == 0]
    in_use = check_no_conflicts(make_conf(state_path))
    assert sorted(won) == sorted(in_use)
    # the host is full whatever the interleaving: at most 8 GPUs in use
    gpus = {"1": 1, "4": 4, "8": 8}
    assert sum(gpus[s[0]] for s in won) <= 8
    check_losers_had_no_room(make_conf(state_path), results, REQUESTS)


@pytest.mark.mariadb
@pytest.mark.parametrize("round_", range(2))
def test_concurrent_spawns_on_mariadb(mariadb, tmp_path, round_):
    """Placement on MariaDB with allocation_conflict_retry_count = 1.

    DESIGN.md 3.2: Placement's default of 10 over-commits under races on
    MariaDB; with 1 the loser gets a 409 that our claim retries.
    """
    state_path = tmp_path / "state"
    state_path.mkdir()
    url = mariadb.create_database(f"placement_{round_}")
    with EmbeddedPlacement(
        str(tmp_path / "placement"),
        database_url=url,
        mode="subprocess",
        threads=8,
        conflict_retry_count=1,
    ) as service:
        remote = remote_conf(tmp_path / "remote.conf", service.endpoint)
        results = spawn_all(
            state_path,
            extra_config=[remote],
            requests=REQUESTS + ["CUSTOM_SLICE_1_GPU_V1"] * 3,
        )
        for status, out in results:
            assert status in (0, 1), out
        won = [out["slice"] for status, out in results if status == 0]
        conf = make_conf(state_path, config_files=(BUNDLE_CONF, str(remote)))
        in_use = check_no_conflicts(conf)
        assert sorted(won) == sorted(in_use)
        check_losers_had_no_room(
            conf, results, REQUESTS + ["CUSTOM_SLICE_1_GPU_V1"] * 3
        )
