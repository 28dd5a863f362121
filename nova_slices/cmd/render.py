"""How results read to people: text renderings of the core's values.

Pure functions from the core's values (or their JSON forms) to text; the
commands and the demos print them.
"""

from nova_slices.cmd.output import table
from nova_slices.cpuset import format_cpuset
from nova_slices.host.views import size_name


def render_fit(result):
    data = result.to_dict()
    if not data["fits"]:
        lines = ["no fit:"]
        for r in data["reasons"]:
            lines.append(f"  [{r['code']}] {r['message']}")
        return "\n".join(lines)
    lines = ["fits:"]
    for c in data["cells"]:
        pins = ", ".join(f"{v}->{p}" for v, p in c["cpu_pinning"].items())
        extra = ""
        if c["emulator_cpus"]:
            extra += f", emulator on {c['emulator_cpus']}"
        if c["shared_cpus"]:
            extra += f", shared vCPUs on {format_cpuset(c['shared_cpus'])}"
        page = f", {c['pagesize_kb']} KiB pages" if c["pagesize_kb"] else ""
        lines.append(
            f"  guest cell {c['guest_cell']} -> host cell {c['host_cell']}"
            f": {c['memory_mb']} MB{page}"
            + (f", pinned {pins}" if pins else "")
            + extra
        )
    if data["pci_devices"]:
        lines.append("  PCI devices: " + ", ".join(data["pci_devices"]))
    return "\n".join(lines)


def render_request(req):
    lines = [f"{req.vcpus} vCPU(s), {req.memory_mb} MB"]
    for key in (
        "cpu_policy",
        "cpu_thread_policy",
        "emulator_threads_policy",
        "pagesize",
        "locked_memory",
        "pci_numa_affinity_policy",
    ):
        value = getattr(req, key)
        if value is not None:
            lines.append(f"{key}: {value}")
    if req.realtime_cpus is not None:
        lines.append(f"realtime vCPUs: {format_cpuset(req.realtime_cpus)}")
    if not req.cells:
        lines.append("no guest NUMA topology")
    for cell in req.cells:
        pin = (
            f" -> host cell {cell.host_cell}"
            if cell.host_cell is not None
            else ""
        )
        pinned = f", pinned {format_cpuset(cell.pcpus)}" if cell.pcpus else ""
        lines.append(
            f"guest cell {cell.id}: vCPUs "
            f"{format_cpuset(cell.cpus)}{pinned}, "
            f"{cell.memory_mb} MB{pin}"
        )
    for alias in req.pci_aliases:
        lines.append(f"PCI alias {alias.name} x {alias.count}")
    if req.ignored:
        lines.append("not interpreted here: " + ", ".join(req.ignored))
    return "\n".join(lines)


def render_providers(views):
    """The tree as indented text with ``used/total`` per class."""
    depth = {}
    lines = []
    for v in views:
        depth[v["uuid"]] = depth.get(v["parent_uuid"], -1) + 1
        inv = ", ".join(
            f"{rc} {i['used']}/{i['total']}"
            + (f" (reserved {i['reserved']})" if i["reserved"] else "")
            for rc, i in v["inventories"].items()
        )
        pad = "  " * depth[v["uuid"]]
        missing = "" if v["reported"] else "  (not in Placement yet)"
        lines.append(
            f"{pad}{v['name']}" + (f"  [{inv}]" if inv else "") + missing
        )
    return "\n".join(lines)


def cell_lines(cells):
    """One line per guest cell: where its vCPUs and memory went."""
    lines = []
    for c in cells:
        pins = c["cpu_pinning"]
        where = []
        if pins:
            vcpus = format_cpuset(int(v) for v in pins)
            where.append(
                f"vCPUs {vcpus} pinned to host CPUs "
                f"{format_cpuset(pins.values())}"
            )
        if c["shared_cpus"]:
            where.append(
                f"shared vCPUs float over {format_cpuset(c['shared_cpus'])}"
            )
        if c["emulator_cpus"]:
            where.append(f"emulator on {format_cpuset(c['emulator_cpus'])}")
        page = c["pagesize_kb"]
        memory = f"{c['memory_mb']} MiB" + (
            f" in {size_name(page)} pages" if page else ""
        )
        lines.append(
            f"guest cell {c['guest_cell']} -> host cell {c['host_cell']}: "
            + "; ".join(where + [memory])
        )
    return lines


def guest_table(views):
    rows = []
    for v in views:
        flavor = v.flavor or {}
        rows.append(
            (
                v.name,
                v.instance_uuid,
                str(flavor.get("vcpus", "-")),
                str(flavor.get("memory_mb", "-")),
                ",".join(str(c["host_cell"]) for c in v.cells) or "-",
                ",".join(v.devices.get("pci", []) + v.devices.get("mdevs", []))
                or "-",
                v.state,
            )
        )
    return table(
        rows,
        (
            "NAME",
            "INSTANCE UUID",
            "VCPUS",
            "MEMORY MB",
            "HOST CELLS",
            "DEVICES",
            "STATE",
        ),
    )


def slice_guest_table(views):
    return table(
        [
            (
                v.name,
                v.instance_uuid,
                v.slice_name or "-",
                v.resource_class or "-",
                v.state,
            )
            for v in views
        ],
        ("NAME", "INSTANCE UUID", "SLICE", "CLASS", "STATE"),
    )


def usage_table(topology, used):
    """Per host cell: pinned CPUs, shared vCPUs, memory and pages."""
    rows = []
    for cell in topology.cells:
        u = used.cell(cell.id)
        rows.append(
            (
                str(cell.id),
                format_cpuset(u.pinned_cpus) or "-",
                str(u.cpu_usage),
                f"{u.memory_mb}/{cell.memory_mb}",
                ", ".join(f"{n} x {size_name(s)}" for s, n in u.pages) or "-",
            )
        )
    return table(
        rows,
        ("CELL", "PINNED CPUS", "SHARED VCPUS", "MEMORY MB", "PAGES"),
    )
