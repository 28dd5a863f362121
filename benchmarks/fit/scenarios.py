"""The benchmark's cases as plain data, and our fitter's inputs from them.

A case is a JSON-serializable dict, the single source both fitters are
built from: ``to_ours`` turns it into HostTopology / GuestRequest / Usage
/ HostDevices / aliases for ``nova_slices.fit.fitter.fit``, and
``nova_child.py`` turns the very same dict into Nova's objects.

Hosts (every CPU cell: 8 CPUs = 4 cores x 2 SMT threads, 16 GiB of 4 KiB
pages, CPU ids ``8c .. 8c+7``, siblings ``(8c+2i, 8c+2i+1)``; the CPU
cells are split between 2 sockets, first half socket 0):

``8`` ``16`` ``32`` ``34``
    that many CPU cells, no memory-only cells.  ``34`` is the 34-cell
    count of a GB200 tray, all of it CPU cells (the worst case for a
    permutation search: every cell can host a guest cell).
``34g``
    GB200-shaped: 34 cells = 18 CPU cells (9 per socket) + 16 memory-only
    cells numbered after them (one GPU per socket, 8 cells per GPU, the
    first holding 184 GiB of HBM, the other 7 empty MIG placeholders with
    0 memory).  A real GB200 has 2 Grace cells of 72 cores; cells of 8
    CPUs need 18 of them so an 8-cell guest can fit on one socket.

The CPU cells carry ``[compute] cpu_dedicated_set`` = every CPU and no
shared set (Nova: ``cpuset=set(), pcpuset=cpus``).

Scenarios (guest: ``k`` cells, ``hw:cpu_policy=dedicated``,
``hw:numa_nodes=k``, 4 GiB per cell):

``fit``               4 vCPUs per cell on an unused host.
``fail_all``          9 vCPUs per cell: one more than any cell has.
``partly_used_adv``   4 vCPUs per cell; every CPU cell but the last ``k``
                      has all 8 CPUs free and no free memory, the last
                      ``k`` have 4 CPUs pinned and 12 GiB free.  Nova's
                      order (more free pCPUs first) puts the usable cells
                      last.
``pci_required_fail`` 4 vCPUs per cell + 2 devices, numa_policy required.
                      One device on cell 0, whose 8 CPUs are all pinned,
                      one on cell 1.  When the guest needs every CPU cell
                      (8 cells on the 8-cell host) pinning cell 0 would
                      make it fail on CPUs instead, so there the first
                      device reports no NUMA node (-1) instead.
``pci_socket_fit``    (control, only on request) as pci_socket_fail but
                      the device is on the last cell of socket 0, fully
                      pinned: the guest fits on socket 0's other cells.
``pci_socket_fail``   4 vCPUs per cell + 1 device, numa_policy socket.
                      The device is on the first cell of socket 1, whose
                      CPU cells are all fully pinned; the guest fits on
                      socket 0 only.  When the guest needs more cells than
                      socket 0 has (8 cells on the 8-cell host) nothing is
                      pinned and the device reports no NUMA node instead.
"""

import json

CPUS_PER_CELL = 8
CELL_MEMORY_MB = 16 * 1024
GUEST_CELL_MB = 4 * 1024
PAGE_KB = 4
VENDOR, PRODUCT = "10de", "2330"

#: label -> (CPU cells, memory-only cells as (socket, memory GiB) list)
HOSTS = {
    "8": (8, ()),
    "16": (16, ()),
    "32": (32, ()),
    "34": (34, ()),
    "34g": (
        18,
        tuple(
            (socket, 184 if node == 0 else 0)
            for socket in range(2)
            for node in range(8)
        ),
    ),
}
HOST_NOTES = {
    "34": "34 CPU cells (2 sockets x 17), no memory-only cells",
    "34g": (
        "GB200-shaped: 18 CPU cells (2 sockets x 9) + 16 memory-only "
        "cells (2 GPUs x 8: 184 GiB HBM + 7 empty MIG placeholders)"
    ),
}
SCENARIOS = (
    "fit",
    "fail_all",
    "partly_used_adv",
    "pci_required_fail",
    "pci_socket_fail",
)
#: run only when named with --scenarios: a socket-policy guest that fits
#: through a device on a fully pinned cell of its own socket (a control
#: for pci_socket_fail; on 34g Nova refuses it, see the note it prints)
EXTRA_SCENARIOS = ("pci_socket_fit",)
GUEST_CELLS = (2, 4, 8)


def host_cells(label):
    """Cells as dicts: CPU cells first, then memory-only cells."""
    n_cpu, memory_only = HOSTS[label]
    half = (n_cpu + 1) // 2
    cells = []
    for c in range(n_cpu):
        base = c * CPUS_PER_CELL
        cpus = list(range(base, base + CPUS_PER_CELL))
        cells.append(
            {
                "id": c,
                "cpus": cpus,
                "siblings": [cpus[i : i + 2] for i in range(0, len(cpus), 2)],
                "socket": 0 if c < half else 1,
                # what Nova's libvirt driver computes: the single socket
                # of the cell's CPUs, None when there are no CPUs
                "nova_socket": 0 if c < half else 1,
                "memory_mb": CELL_MEMORY_MB,
            }
        )
    for i, (socket, gib) in enumerate(memory_only):
        cells.append(
            {
                "id": n_cpu + i,
                "cpus": [],
                "siblings": [],
                "socket": socket,
                "nova_socket": None,
                "memory_mb": gib * 1024,
            }
        )
    for cell in cells:
        cell["pages"] = [[PAGE_KB, cell["memory_mb"] * 1024 // PAGE_KB]]
    return cells


def _cell_usage(pinned=(), memory_mb=0):
    return {
        "pinned": sorted(pinned),
        "memory_mb": memory_mb,
        "pages": [[PAGE_KB, memory_mb * 1024 // PAGE_KB]] if memory_mb else [],
    }


def _device(index, numa_node):
    return {
        "address": f"0000:{0x10 + index:02x}:00.0",
        "vendor_id": VENDOR,
        "product_id": PRODUCT,
        "numa_node": numa_node,
    }


def build_case(scenario, label, k):
    """The case dict for ``scenario`` on host ``label``, ``k`` guest cells."""
    cells = host_cells(label)
    cpu_cells = [c for c in cells if c["cpus"]]
    n_cpu = len(cpu_cells)
    usage = {}
    devices = []
    pci = None
    notes = []
    per_cell = 9 if scenario == "fail_all" else 4
    if scenario == "partly_used_adv":
        if k < n_cpu:
            for c in cpu_cells[: n_cpu - k]:
                usage[c["id"]] = _cell_usage((), c["memory_mb"])
        else:
            notes.append("guest needs every cell: nothing to sort last")
        for c in cpu_cells[max(0, n_cpu - k) :]:
            usage[c["id"]] = _cell_usage(c["cpus"][:4], GUEST_CELL_MB)
    elif scenario == "pci_required_fail":
        pci = {"alias": "gpu", "count": 2, "numa_policy": "required"}
        if k < n_cpu:
            usage[0] = _cell_usage(cpu_cells[0]["cpus"], 8 * 1024)
            devices = [_device(0, 0), _device(1, 1)]
        else:
            devices = [_device(0, None), _device(1, 1)]
            notes.append("guest needs every cell: device 0 has no NUMA node")
    elif scenario == "pci_socket_fail":
        pci = {"alias": "nic", "count": 1, "numa_policy": "socket"}
        socket0 = [c for c in cpu_cells if c["socket"] == 0]
        socket1 = [c for c in cpu_cells if c["socket"] == 1]
        if k <= len(socket0):
            for c in socket1:
                usage[c["id"]] = _cell_usage(c["cpus"], 8 * 1024)
            devices = [_device(0, socket1[0]["id"])]
        else:
            devices = [_device(0, None)]
            notes.append("guest needs both sockets: device has no NUMA node")
    elif scenario == "pci_socket_fit":
        pci = {"alias": "nic", "count": 1, "numa_policy": "socket"}
        socket0 = [c for c in cpu_cells if c["socket"] == 0]
        if k < len(socket0):
            last = socket0[-1]
            usage[last["id"]] = _cell_usage(last["cpus"], 8 * 1024)
            devices = [_device(0, last["id"])]
        else:
            devices = [_device(0, cpu_cells[0]["id"])]
            notes.append("guest needs a whole socket: device cell not pinned")
    specs = {"hw:cpu_policy": "dedicated", "hw:numa_nodes": str(k)}
    aliases = []
    if pci:
        specs["pci_passthrough:alias"] = f"{pci['alias']}:{pci['count']}"
        aliases.append(
            json.dumps(
                {
                    "name": pci["alias"],
                    "vendor_id": VENDOR,
                    "product_id": PRODUCT,
                    "numa_policy": pci["numa_policy"],
                }
            )
        )
    if (
        any(not c["cpus"] for c in cells)
        and pci
        and pci["numa_policy"] == ("socket")
    ):
        notes.append(
            "Nova: memory-only cells have socket None (as its libvirt "
            "driver reports them), which disables the socket policy on "
            "the whole host"
        )
    return {
        "scenario": scenario,
        "host": label,
        "k": k,
        "cells": cells,
        "usage": {str(c): u for c, u in usage.items()},
        "guest": {
            "vcpus": per_cell * k,
            "memory_mb": GUEST_CELL_MB * k,
            "extra_specs": specs,
        },
        "devices": devices,
        "pci": pci,
        "aliases": aliases,
        "notes": notes,
    }


def to_ours(case):
    """Keyword arguments for ``fit`` (and the GuestRequest among them)."""
    from nova_slices.fit.model import CellUsage, Usage
    from nova_slices.fit.pci import parse_aliases
    from nova_slices.host.devices import HostDevices, PciDevice
    from nova_slices.host.restrictions import HostRestrictions
    from nova_slices.host.topology import Cell, Cpu, HostTopology, PagePool
    from nova_slices.request.build import build_request

    cells = []
    for c in case["cells"]:
        sib = {}
        for group in c["siblings"]:
            for cpu in group:
                sib[cpu] = frozenset(group)
        cpus = tuple(
            Cpu(
                id=cpu,
                socket=c["socket"],
                core=cpu // 2,
                siblings=sib.get(cpu, frozenset({cpu})),
            )
            for cpu in c["cpus"]
        )
        cells.append(
            Cell(
                id=c["id"],
                cpus=cpus,
                memory_kb=c["memory_mb"] * 1024,
                pages=tuple(PagePool(s, t) for s, t in c["pages"]),
                socket=c["socket"],
            )
        )
    topology = HostTopology(tuple(cells))
    usage = Usage(
        cells=tuple(
            sorted(
                (
                    int(cid),
                    CellUsage(
                        pinned_cpus=frozenset(u["pinned"]),
                        memory_mb=u["memory_mb"],
                        pages=tuple(sorted(tuple(p) for p in u["pages"])),
                    ),
                )
                for cid, u in case["usage"].items()
            )
        )
    )
    devices = HostDevices(
        tuple(
            PciDevice(
                address=d["address"],
                vendor_id=d["vendor_id"],
                product_id=d["product_id"],
                numa_node=d["numa_node"],
                socket=(
                    topology.socket_of_cell(d["numa_node"])
                    if d["numa_node"] is not None
                    else None
                ),
            )
            for d in case["devices"]
        )
    )
    g = case["guest"]
    request = build_request(g["vcpus"], g["memory_mb"], g["extra_specs"])
    restrictions = HostRestrictions(dedicated_cpus=topology.cpu_ids)
    return {
        "topology": topology,
        "request": request,
        "usage": usage,
        "restrictions": restrictions,
        "devices": devices,
        "aliases": parse_aliases(case["aliases"]),
    }


def guest_cells(request):
    """The guest's cells as Nova's InstanceNUMACell needs them."""
    return [
        {
            "id": c.id,
            "cpus": sorted(c.cpus),
            "pcpus": sorted(c.pcpus),
            "memory_mb": c.memory_mb,
        }
        for c in request.cells
    ]
