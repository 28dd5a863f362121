"""The host model as the ``topology`` command shows it: JSON and text.

The JSON shape is a contract (DESIGN.md section 5): keys may be added,
never renamed.
"""

from nova_slices.cpuset import format_cpuset


def topology_to_dict(topology, devices=None, restrictions=None):
    out = {
        "sockets": topology.sockets,
        "cells": [
            {
                "id": cell.id,
                "socket": cell.socket,
                "cpus": sorted(cell.cpu_ids),
                "siblings": [list(g) for g in cell.siblings()],
                "memory_mb": cell.memory_mb,
                "pages": [
                    {"size_kb": p.size_kb, "total": p.total}
                    for p in cell.pages
                ],
                "distances": {str(k): v for k, v in cell.distances},
                "memory_only": cell.memory_only,
            }
            for cell in topology.cells
        ],
        "pci_devices": [
            {
                "address": d.address,
                "vendor_id": d.vendor_id,
                "product_id": d.product_id,
                "class_id": d.class_id,
                "numa_node": d.numa_node,
                "socket": d.socket,
                "iommu_group": d.iommu_group,
                "dev_type": d.dev_type,
                "parent_address": d.parent_address,
                "vf_addresses": list(d.vf_addresses),
                "mdev_types": [
                    {
                        "name": m.name,
                        "available_instances": m.available_instances,
                        "device_api": m.device_api,
                    }
                    for m in d.mdev_types
                ],
            }
            for d in (devices.pci if devices else ())
        ],
        "mdevs": [
            {
                "uuid": m.uuid,
                "type": m.type,
                "parent_address": m.parent_address,
            }
            for m in (devices.mdevs if devices else ())
        ],
    }
    if restrictions is not None:
        out["restrictions"] = restrictions.to_dict()
    return out


def size_name(kb):
    """A size in KiB as people write page sizes: 4K, 2M, 1G."""
    for unit, factor in (("T", 1024**3), ("G", 1024**2), ("M", 1024)):
        if kb >= factor and kb % factor == 0:
            return f"{kb // factor}{unit}"
    return f"{kb}K"


def _cores(cell):
    """Thread ids grouped by physical core (socket, die, cluster, core)."""
    groups = {}
    for cpu in cell.cpus:
        key = (
            (cpu.socket, cpu.die, cpu.cluster, cpu.core)
            if cpu.core is not None
            else ("cpu", cpu.id)
        )
        groups.setdefault(key, []).append(cpu.id)
    return groups


def render_text(topology, devices=None, restrictions=None):
    """A readable tree: socket -> cell -> cores/threads, memory, devices."""
    lines = []
    by_cell = {}
    for d in devices.pci if devices else ():
        by_cell.setdefault(d.numa_node, []).append(d)
    sockets = {}
    for cell in topology.cells:
        sockets.setdefault(cell.socket, []).append(cell)
    n_cpus = len(topology.cpu_ids)
    lines.append(
        f"host: {len(topology.sockets)} socket(s), {len(topology.cells)} "
        f"NUMA cell(s), {n_cpus} CPU(s), "
        f"{sum(c.memory_mb for c in topology.cells)} MiB"
    )
    for socket in sorted(sockets, key=lambda s: (s is None, s)):
        label = (
            f"socket {socket}"
            if socket is not None
            else (
                "socket unknown (CPUs without socket ids, or a cell spanning "
                "sockets)"
            )
        )
        lines.append(label)
        for cell in sockets[socket]:
            lines.extend(
                _cell_lines(cell, by_cell.get(cell.id, []), restrictions)
            )
    orphans = by_cell.get(None, [])
    if orphans:
        lines.append("devices without NUMA affinity")
        lines.extend(_device_lines(orphans, "  "))
    if devices and devices.mdevs:
        lines.append("mediated devices")
        for m in devices.mdevs:
            lines.append(f"  {m.uuid} {m.type} on {m.parent_address or '?'}")
    if restrictions is not None:
        r = restrictions
        for label, cpus in (
            ("cpu_dedicated_set", r.dedicated_cpus),
            ("cpu_shared_set", r.shared_cpus),
        ):
            if cpus is not None:
                lines.append(f"{label}: {format_cpuset(cpus)}")
        lines.append(f"reserved_host_memory_mb: {r.reserved_memory_mb}")
    return "\n".join(lines)


def _cell_lines(cell, devices, restrictions):
    kind = " (memory only)" if cell.memory_only else ""
    lines = [
        f"  cell {cell.id}{kind}: {cell.memory_mb} MiB"
        f" ({cell.memory_mb / 1024:g} GiB)"
    ]
    pools = ", ".join(
        f"{size_name(p.size_kb)} x {p.total}"
        + (
            f" ({restrictions.reserved(cell.id, p.size_kb)} reserved)"
            if restrictions and restrictions.reserved(cell.id, p.size_kb)
            else ""
        )
        for p in cell.pages
    )
    if pools:
        lines.append(f"    pages: {pools}")
    if cell.distances:
        lines.append(
            "    distances: "
            + ", ".join(f"{k}:{v}" for k, v in cell.distances)
        )
    if cell.cpus:
        cores = _cores(cell)
        lines.append(
            f"    CPUs {format_cpuset(cell.cpu_ids)}: {len(cores)} core(s), "
            f"{len(cell.cpus)} thread(s)"
        )
        per_line = [
            ",".join(map(str, ids)) for ids in sorted(cores.values(), key=min)
        ]
        for i in range(0, len(per_line), 8):
            lines.append(
                "      " + "  ".join(f"[{t}]" for t in per_line[i : i + 8])
            )
    lines.extend(_device_lines(devices, "    "))
    return lines


def _device_lines(devices, pad):
    lines = []
    vfs = {}
    for d in devices:
        if d.dev_type == "type-VF" and d.parent_address:
            vfs.setdefault(d.parent_address, []).append(d)
    shown = {d.address for d in devices}
    for d in devices:
        if d.dev_type == "type-VF" and d.parent_address in shown:
            continue  # listed under its PF
        extra = ""
        if d.dev_type == "type-PF":
            extra = f", {len(vfs.get(d.address, []))} VF(s)"
        if d.mdev_types:
            extra += ", mdev " + ", ".join(
                f"{m.name} ({m.available_instances} free)"
                for m in d.mdev_types
            )
        lines.append(
            f"{pad}{d.address} {d.vendor_id}:{d.product_id} "
            f"{d.dev_type}{extra}"
        )
    return lines
