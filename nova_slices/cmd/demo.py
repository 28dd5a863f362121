"""``nova-slices demo``: the whole story in under a minute.

Runs on the configured host (the embedded default when there is no
configuration), or on the host bundle ``--host`` names with that
bundle's own configuration, but always in a fresh, temporary state
directory, so it never touches the guests or the Placement database of a
real run.  A host with slices gets the slice tour; a host without, the
dynamic one (:mod:`nova_slices.cmd.demo_dynamic`).
"""

import os
import shutil
import tempfile
import time

from nova_slices import data
from nova_slices.cmd import demo_dynamic
from nova_slices.cmd.render import render_providers
from nova_slices.cmd.runtime import BUNDLE_CONF, Runtime, load_conf
from nova_slices.errors import ConfigError, NoCandidates

FOUR = "CUSTOM_SLICE_4_GPU_V1"
ONE = "CUSTOM_SLICE_1_GPU_V1"
EIGHT = "CUSTOM_SLICE_8_GPU_V1"
NIC_VF = "CUSTOM_NIC_VF"


def _say(text=""):
    print(text, flush=True)


def run(args, rt):
    started = time.monotonic()
    conf = _bundle_conf(args.host) if getattr(args, "host", None) else rt.conf
    state = tempfile.mkdtemp(prefix="nova-slices-demo-")
    conf.set_override("state_path", state)
    try:
        with Runtime(conf) as demo_rt:
            if not demo_rt.has_slices:
                return demo_dynamic.tour(demo_rt, started, time.monotonic)
            return _tour(demo_rt, started)
    finally:
        if getattr(args, "keep", False):
            _say(f"state kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


def _bundle_conf(name):
    """The configuration of a host bundle: its own nova-slices.conf."""
    bundle = data.resolve_bundle(name)
    path = os.path.join(bundle, BUNDLE_CONF)
    if not os.path.isfile(path):
        raise ConfigError(
            f"--host {name}: {path} does not exist; give a shipped bundle "
            f"({', '.join(data.shipped_bundles())}) or a directory holding "
            f"capabilities.xml, node.xml and {BUNDLE_CONF}",
            code="config.bundle-invalid",
            key="--host",
            value=name,
        )
    return load_conf([path], overrides={("libvirt", "host_bundle"): bundle})


def _tour(rt, started):
    driver = rt.placing_driver
    _say(f"host {rt.host.hostname}: libvirt {rt.host.uri}")
    _say(
        f"Placement: embedded at {rt.client.endpoint} "
        f"(state in {rt.conf.state_path})"
    )
    _say(
        f"{len(driver.tree.slices)} slices configured: "
        + ", ".join(
            f"{s.name} ({s.resource_class})"
            for s in driver.tree.slices.values()
        )
    )
    result = driver.update_provider_tree()
    _say(
        f"\n1. reported {len(result.created)} resource providers "
        f"({rt.client.writes()} writes)"
    )
    again = driver.update_provider_tree()
    _say(
        "   a second sync changed "
        f"{'something' if again.changed else 'nothing'}"
        f" ({rt.client.writes()} writes in all)"
    )

    # the 4-GPU guest also asks for a VF of the NIC when the host offers
    # them (the shipped bundle does), as a flavor would
    offers_vfs = any(
        NIC_VF in p.inventories for p in driver.providers.providers
    )
    vf_spec = {f"resources_NIC:{NIC_VF}": "1"} if offers_vfs else None
    _say(
        "\n2. spawning one 4-GPU guest"
        + (" with a VF of the NIC" if offers_vfs else "")
        + " and three 1-GPU guests"
    )
    guests = [("demo-4gpu", FOUR, vf_spec)] + [
        (f"demo-1gpu-{i}", ONE, None) for i in (1, 2, 3)
    ]
    for name, rc, specs in guests:
        view = driver.spawn(name, rc, extra_specs=specs)
        bound = view.devices["pci"] + view.devices["mdevs"]
        _say(
            f"   {name:<12} -> slice {view.slice_name:<4} "
            f"({rc}, instance {view.instance_uuid})"
            + (f"\n{'':<19}+ {', '.join(bound)}" if bound else "")
        )

    _say("\n3. an 8-GPU guest must be refused: every GPU slice overlaps it")
    try:
        driver.spawn("demo-8gpu", EIGHT)
    except NoCandidates as exc:
        _say(f"   refused [{exc.code}]: {exc.message}")
        for r in driver.explain_unavailable(EIGHT):
            _say(f"     slice {r['slice']}: {r['reason']}")
    else:
        raise AssertionError("the 8-GPU guest was admitted")

    _say("\n4. the provider tree with usage (used/total)")
    for line in render_providers(driver.provider_views()).splitlines():
        _say("   " + line)
    views, problems = driver.guests()
    _say(
        f"   libvirt runs {len(views)} guests; "
        f"{len(problems)} disagreements with Placement"
    )

    _say("\n5. destroying everything")
    for name, _, _ in guests:
        record = driver.destroy(name)
        freed = " and ".join([f"slice {record.slice_name}", *record.pci])
        _say(f"   {name:<12} destroyed, {freed} free")
    free = all(
        i["used"] == 0
        for v in driver.provider_views()
        for i in v["inventories"].values()
    )
    _say(f"   all slices and devices free again: {free}")
    _say(f"\ndemo finished in {time.monotonic() - started:.1f} s")
    return 0 if free else 1
