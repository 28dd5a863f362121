"""Several processes spawning at once never share a slice.

Each process is a real ``nova-slices spawn`` with its own libvirt
connection and its own Placement client; they race from the first sync to
the last define.
"""

import json
import os
import subprocess
import sys

from nova_slices.cmd.runtime import Runtime
from nova_slices.placement import claims
from tests.functional.conftest import BUNDLE_CONF, make_conf

REQUESTS = (
    ["CUSTOM_SLICE_1_GPU_V1"] * 5
    + ["CUSTOM_SLICE_4_GPU_V1"] * 2
    + ["CUSTOM_SLICE_8_GPU_V1"]
)


def spawn_all(state_path, extra_config=(), requests=REQUESTS):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    config = ["--config-file", BUNDLE_CONF]
    for path in extra_config:
        config += ["--config-file", str(path)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nova_slices.cmd.main",
                *config,
                "--state-path",
                str(state_path),
                "spawn",
                f"g{i}",
                "--slice-class",
                rc,
                "--format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, rc in enumerate(requests)
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
        usage = claims.tree_usage(rt.client, rt.driver.providers)
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
    assert len(won) >= 2
