"""What a dynamic spawn costs, phase by phase, against a slice spawn.

On the shipped nfv-snc-2s host (libvirt's test driver, the embedded
Placement), spawns pinned 2-cell guests one after another until the host
is full, then destroys them; prints the median time of a whole spawn and
of its phases (usage rebuilt from the domains, the fit, the rest: the
Placement claim, domain XML, validation, define), and of a destroy.  The
baseline, measured in the same run on the shipped gpu8-2s host, is a
slice spawn (Placement claim, template render, validation, define): the
ratio says what the dynamic path adds over rendering an operator's
template.

    python benchmarks/bench_dynamic_spawn.py [--rounds N]
"""

import argparse
import os
import statistics
import tempfile
import time

from nova_slices import data
from nova_slices.cmd.runtime import Runtime, load_conf
from nova_slices.fit.fitter import fit
from nova_slices.request.build import build_request

SPECS = {
    "hw:cpu_policy": "dedicated",
    "hw:numa_nodes": "2",
    "hw:mem_page_size": "1GB",
}


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def ms(values):
    return f"{statistics.median(values) * 1000:7.2f} ms"


def dynamic_round(rt):
    driver = rt.driver
    request = build_request(4, 4096, SPECS)
    spawns, rebuilds, fits, destroys, names = [], [], [], [], []
    while True:
        usage, t_usage = timed(driver.usage)
        placement, t_fit = timed(
            lambda u=usage: fit(
                driver.topology, request, u, driver.restrictions
            )
        )
        if not getattr(placement, "cells", None):
            break
        name = f"bench-{len(names)}"
        _, t = timed(lambda n=name: driver.spawn(n, 4, 4096, 1, SPECS))
        spawns.append(t)
        rebuilds.append(t_usage)
        fits.append(t_fit)
        names.append(name)
    for name in names:
        destroys.append(timed(lambda n=name: driver.destroy(n))[1])
    return spawns, rebuilds, fits, destroys


def slice_round(rt):
    driver = rt.driver
    driver.update_provider_tree()
    times, names = [], []
    for i in range(8):
        name = f"slice-{i}"
        _, t = timed(lambda n=name: driver.spawn(n, "CUSTOM_SLICE_1_GPU_V1"))
        times.append(t)
        names.append(name)
    for name in names:
        driver.destroy(name)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dyn_conf = os.path.join(data.host_bundle("nfv-snc-2s"), "nova-slices.conf")
    slice_conf = os.path.join(data.host_bundle(), "nova-slices.conf")
    spawns, rebuilds, fits, destroys, slices = [], [], [], [], []
    # one embedded Placement per process at a time: the hosts in turn
    with tempfile.TemporaryDirectory() as state:
        conf = load_conf([dyn_conf], overrides={(None, "state_path"): state})
        with Runtime(conf) as rt:
            rt.driver.update_provider_tree()
            for _ in range(args.rounds):
                s, r, f, d = dynamic_round(rt)
                spawns += s
                rebuilds += r
                fits += f
                destroys += d
    with tempfile.TemporaryDirectory() as state:
        conf = load_conf([slice_conf], overrides={(None, "state_path"): state})
        with Runtime(conf) as rt:
            for _ in range(args.rounds):
                slices += slice_round(rt)
    per_round = len(spawns) // args.rounds
    print(
        f"nfv-snc-2s: {per_round} pinned 2-cell guests (4 vCPUs, 4 GiB of "
        f"1G pages) per round until full, {args.rounds} rounds"
    )
    print(f"  dynamic spawn, whole          {ms(spawns)}")
    print(f"    usage rebuilt from domains  {ms(rebuilds)}")
    print(f"    fit                         {ms(fits)}")
    print(f"  destroy                       {ms(destroys)}")
    print(f"gpu8-2s baseline: slice spawn  {ms(slices)} (8 x 1-GPU)")
    ratio = statistics.median(spawns) / statistics.median(slices)
    print(f"dynamic / slice spawn: {ratio:.2f}x")


if __name__ == "__main__":
    main()
