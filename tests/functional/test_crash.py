"""kill -9 at every step of a spawn and a destroy, on both kinds of host.

Each victim is a real ``nova-slices`` process that dies by SIGKILL at a
named step (``NOVA_SLICES_FAULT=after:STEP``, see
:mod:`nova_slices.faults`).  Then a new command (``sync``: a restart)
reconciles, and Placement must hold exactly what libvirt holds: no
allocation without its domain, no domain without its allocation, every
vGPU in Placement bound in a domain; no journal entry left; and the host
still spawns and destroys.  Real parts: libvirt's test driver, the real
Placement service, the real mdev backend (the kernel's sysfs is the one
stand-in).
"""

import os
import signal
import subprocess
import sys
import uuid

import pytest

from nova_slices.cmd.runtime import Runtime
from tests.fixtures.fake_sysfs import FakeSysfs
from tests.functional import test_device_binding as slice_host
from tests.functional import test_dynamic_guests as dynamic_host
from tests.functional.conftest import BUNDLE_CONF, make_conf

HOSTS = {
    # the shipped bundle: a 1-GPU slice and a vGPU next to it
    "slices": (
        BUNDLE_CONF,
        slice_host.bundle_devices,
        (
            "--slice-class",
            "CUSTOM_SLICE_1_GPU_V1",
            "--extra-spec",
            "resources_GPU:VGPU=1",
        ),
    ),
    # no slices: a pinned guest with a vGPU
    "dynamic": (
        dynamic_host.NFV_CONF,
        dynamic_host.bundle_devices,
        (
            "--vcpus",
            "2",
            "--memory-mb",
            "2048",
            "--extra-spec",
            "hw:cpu_policy=dedicated",
            "--extra-spec",
            "resources:VGPU=1",
        ),
    ),
}

#: (operation, step, the victim is a guest afterwards, the reconcile
#: releases its allocation)
STEPS = [
    ("spawn", "claim", False, True),
    ("spawn", "mdev", False, True),
    ("spawn", "bind", False, True),
    ("spawn", "define", True, False),
    ("spawn", "start", True, False),
    # the persisted domain is still marked running: it is started again
    ("destroy", "stop", True, False),
    ("destroy", "undefine", False, True),
    ("destroy", "release", False, False),
]


@pytest.fixture(params=sorted(HOSTS))
def host(request, tmp_path, state_path, cli):
    """(run, config, guest flags): a host with one guest, ``base``, that
    every crash must leave alone."""
    conf_file, devices, guest = HOSTS[request.param]
    with FakeSysfs.like_host(tmp_path / "sys", devices()) as kernel:
        extra = tmp_path / "sysfs.conf"
        extra.write_text(f"[devices]\nmdev_sysfs_root = {kernel.root}\n")
        config = [conf_file, str(extra)]

        def run(*argv):
            return cli(*argv, config=config)

        status, _, err = run("spawn", "base", *guest, "--format", "json")
        assert status == 0, err
        yield run, config, guest


def run_killed(state_path, config, step, *argv):
    """Run ``nova-slices ARGV`` in a new process that dies at ``step``."""
    args = []
    for path in config:
        args += ["--config-file", str(path)]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nova_slices.cmd.main",
            *args,
            "--state-path",
            str(state_path),
            *argv,
        ],
        env=dict(os.environ, NOVA_SLICES_FAULT=f"after:{step}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, (
        f"{argv[0]} did not reach step {step}: status {proc.returncode}, "
        f"stderr: {proc.stderr}"
    )


def check_agreement(state_path, config):
    """Placement holds what libvirt holds; {guest name: GuestView}."""
    with Runtime(make_conf(state_path, config_files=config)) as rt:
        views, problems = rt.driver.guests()
        by_consumer = rt.driver.allocations_by_consumer()
        intents = rt.driver.journal.entries()
    assert [p.code for p in problems] == [], [p.message for p in problems]
    assert set(by_consumer) == {v.instance_uuid for v in views}
    assert intents == ()
    vgpus = sum(
        res.get("VGPU", 0)
        for allocation in by_consumer.values()
        for res in allocation.values()
    )
    assert vgpus == sum(len(v.devices["mdevs"]) for v in views)
    return {v.name: v for v in views}


@pytest.mark.parametrize(
    "op,step,survives,released",
    STEPS,
    ids=[f"{op}-after-{step}" for op, step, _, _ in STEPS],
)
def test_kill_9_then_restart_agrees(
    host, state_path, op, step, survives, released
):
    run, config, guest = host
    victim = str(uuid.uuid4())
    spawn = ("spawn", "victim", *guest, "--uuid", victim)
    if op == "spawn":
        run_killed(state_path, config, step, *spawn)
    else:
        status, _, err = run(*spawn)
        assert status == 0, err
        run_killed(state_path, config, step, "destroy", "victim")

    # the restart: a new command reconciles
    status, out, err = run("sync", "--format", "json")
    assert status == 0, err
    repairs = out["repairs"]
    assert [r["consumer"] for r in repairs["released"]] == (
        [victim] if released else []
    ), repairs
    assert repairs["kept"] == [] and repairs["not_reclaimed"] == []
    if released:
        assert f"{op} of victim" in repairs["released"][0]["reason"]

    guests = check_agreement(state_path, config)
    assert sorted(guests) == (["base", "victim"] if survives else ["base"])
    if survives:
        assert guests["victim"].instance_uuid == victim
        want = "shut off" if step == "define" else "running"
        assert guests["victim"].state == want

    # the host still destroys and spawns, under the victim's name too
    if survives:
        assert run("destroy", "victim")[0] == 0
    status, _, err = run("spawn", "victim", *guest)
    assert status == 0, err
    assert run("destroy", "victim")[0] == 0
    assert sorted(check_agreement(state_path, config)) == ["base"]
