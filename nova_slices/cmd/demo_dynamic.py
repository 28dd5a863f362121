"""The demo's tour of a host without slices (``demo --host nfv-snc-2s``).

Guests are placed from their flavors: a pinned 2-cell guest on 1 GiB
pages, a GPU guest under the ``socket`` PCI NUMA policy (and one the
policy refuses, with its reasons), a guest with a VF of the NIC on its
own cell; then usage is rebuilt from libvirt through a new connection, as
after a restart, and compared, and everything is destroyed.
"""

from nova_slices.cmd.render import cell_lines, render_providers
from nova_slices.cmd.runtime import Runtime
from nova_slices.cpuset import format_cpuset
from nova_slices.errors import NoFit
from nova_slices.host.views import size_name

#: (name, vcpus, memory MiB, extra specs, what it shows)
GUESTS = (
    (
        "demo-pinned-2cell",
        8,
        8192,
        {
            "hw:cpu_policy": "dedicated",
            "hw:cpu_thread_policy": "require",
            "hw:numa_nodes": "2",
            "hw:mem_page_size": "1GB",
            "hw:emulator_threads_policy": "isolate",
        },
        "8 pinned vCPUs on 2 NUMA cells, 1 GiB pages, isolated emulator",
    ),
    (
        "demo-gpu-socket",
        4,
        4096,
        {
            "hw:cpu_policy": "dedicated",
            "hw:numa_node.0": "0",
            "hw:pci_numa_affinity_policy": "socket",
            "pci_passthrough:alias": "a100:1",
        },
        "4 pinned vCPUs on host cell 0 with the A100 (policy socket)",
    ),
    (
        "demo-vf",
        2,
        2048,
        {"hw:numa_nodes": "1", "pci_passthrough:alias": "vf:1"},
        "2 shared vCPUs on one cell with a VF of the NIC on that cell",
    ),
)

#: refused: the A100 sits on socket 0, the guest is pinned to socket 1
REFUSED = (
    "demo-gpu-wrong-socket",
    4,
    4096,
    {
        "hw:cpu_policy": "dedicated",
        "hw:numa_node.0": "2",
        "hw:pci_numa_affinity_policy": "socket",
        "pci_passthrough:alias": "a100:1",
    },
)


def _say(text=""):
    print(text, flush=True)


def _spawn(driver, guest):
    name, vcpus, memory, specs, what = guest
    view = driver.spawn(name, vcpus, memory, 1, specs)
    _say(f"   {name}: {what}")
    for line in cell_lines(view.cells):
        _say(f"     {line}")
    bound = view.devices["pci"] + view.devices["mdevs"]
    if bound:
        _say(f"     devices: {', '.join(bound)}")


def tour(rt, started, clock):
    driver = rt.driver
    topo = driver.topology
    r = driver.restrictions
    _say(f"host {rt.host.hostname}: libvirt {rt.host.uri}")
    _say(
        f"Placement: embedded at {rt.client.endpoint} "
        f"(state in {rt.conf.state_path})"
    )
    _say(
        f"no slices: guests are placed dynamically on {len(topo.cells)} "
        f"NUMA cells; dedicated CPUs {format_cpuset(r.dedicated_cpus)}, "
        f"shared {format_cpuset(r.shared_cpus)}"
    )
    result = driver.update_provider_tree()
    _say(
        f"\n1. reported {len(result.created)} resource providers "
        f"({rt.client.writes()} writes)"
    )
    for line in render_providers(driver.provider_views()).splitlines():
        _say("   " + line)

    _say("\n2. spawning guests from their flavors")
    _spawn(driver, GUESTS[0])

    name, vcpus, memory, specs = REFUSED
    _say(
        f"\n3. {name} asks for the A100 (socket 0) but is pinned to host "
        "cell 2 (socket 1): refused, with its reasons"
    )
    try:
        driver.spawn(name, vcpus, memory, 1, specs)
    except NoFit as exc:
        _say(f"   refused [{exc.code}]")
        for reason in exc.reasons:
            _say(f"     [{reason.code}] {reason.message}")
    else:
        raise AssertionError("the wrong-socket guest was admitted")
    _say("   the same GPU on host cell 0, its socket, is fine:")
    for guest in GUESTS[1:]:
        _spawn(driver, guest)

    _say("\n4. usage per host cell, rebuilt from the libvirt domains")
    usage = driver.usage()
    for cell in topo.cells:
        u = usage.cell(cell.id)
        pages = ", ".join(f"{n} x {size_name(s)}" for s, n in u.pages)
        _say(
            f"   cell {cell.id}: pinned {format_cpuset(u.pinned_cpus) or '-'}"
            f"; memory {u.memory_mb}/{cell.memory_mb} MiB"
            + (f" ({pages} pages)" if pages else "")
        )
    _say(
        "   PCI devices in use: "
        + (", ".join(sorted(usage.pci_devices_in_use)) or "none")
    )
    for line in render_providers(driver.provider_views()).splitlines():
        _say("   " + line)

    with Runtime(rt.conf) as fresh:
        again = fresh.driver.usage()
        views, problems = fresh.driver.guests()
    _say(
        "\n5. as after a restart (a new libvirt connection and Placement "
        "client), the usage rebuilt from libvirt is the same: "
        f"{again == usage}; {len(views)} guests, {len(problems)} "
        "disagreements with Placement"
    )

    _say("\n6. destroying everything")
    for name, *_ in GUESTS:
        record = driver.destroy(name)
        freed = ", ".join(record.pci) or "no device"
        _say(f"   {name} destroyed ({freed} freed)")
    free = driver.usage().cells == () and all(
        i["used"] == 0
        for v in driver.provider_views()
        for i in v["inventories"].values()
    )
    _say(f"   every CPU, page, device and allocation free again: {free}")
    _say(f"\ndemo finished in {clock() - started:.1f} s")
    return 0 if free and again == usage and not problems else 1
