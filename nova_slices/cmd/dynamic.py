"""The commands of a host without slices: spawn from a flavor, usage."""

from nova_slices.cmd.output import emit_json, emit_rejection, table
from nova_slices.cpuset import format_cpuset
from nova_slices.errors import NoCandidates, NoFit, RequestError
from nova_slices.placement.request_groups import flavor_request
from nova_slices.request.build import build_request


def refuse_flags(args, names, why):
    """Flags that have no meaning on this kind of host: exit 2."""
    for name in names:
        if getattr(args, name, None):
            flag = "--" + name.replace("_", "-")
            raise RequestError(
                f"{flag}: {why}",
                code="spawn.flag-not-applicable",
                key=flag,
                value=getattr(args, name),
            )


def spawn(args, rt, interfaces):
    refuse_flags(
        args,
        ("slice_class",),
        "this host has no [libvirt] slice_spec; its guests are placed "
        "from --vcpus, --memory-mb and the flavor's extra specs",
    )
    for flag, value in (
        ("--vcpus", args.vcpus),
        ("--memory-mb", args.memory_mb),
    ):
        if value is None:
            raise RequestError(
                f"{flag} is required on a host without slices",
                code="spawn.flavor-required",
                key=flag,
            )
    driver = rt.driver
    driver.update_provider_tree()
    extra_specs = dict(args.extra_spec)
    image_props = dict(args.image_property)
    try:
        view = driver.spawn(
            args.name,
            args.vcpus,
            args.memory_mb,
            args.disk_gb,
            extra_specs,
            image_props,
            instance_uuid=args.uuid,
            interfaces=interfaces,
        )
    except NoFit as exc:
        return _refused(args, exc, [r.to_dict() for r in exc.reasons])
    except NoCandidates as exc:
        if not exc.code.startswith("placement."):
            raise
        request = build_request(
            args.vcpus, args.memory_mb, extra_specs, image_props
        )
        reasons = driver.explain_placement(
            flavor_request(request, args.disk_gb)
        )
        return _refused(args, exc, reasons)
    if args.format == "json":
        from nova_slices.cmd.commands import _guest_json

        emit_json(_guest_json(view))
        return 0
    print(
        f"spawned {view.name} ({view.instance_uuid}): {args.vcpus} vCPUs, "
        f"{args.memory_mb} MiB"
    )
    for line in cell_lines(view.cells):
        print("  " + line)
    bound = view.devices.get("pci", []) + view.devices.get("mdevs", [])
    if bound:
        print(f"  devices: {', '.join(bound)}")
    return 0


def _refused(args, exc, reasons):
    return emit_rejection(
        args.format,
        exc,
        reasons,
        lambda r: (
            f"[{r['code']}] {r['message']}"
            if "code" in r
            else f"{r['provider']}: {r['reason']}"
        ),
    )


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
            f" in {page_name(page)} pages" if page else ""
        )
        lines.append(
            f"guest cell {c['guest_cell']} -> host cell {c['host_cell']}: "
            + "; ".join(where + [memory])
        )
    return lines


def page_name(size_kb):
    if size_kb % (1024 * 1024) == 0:
        return f"{size_kb // (1024 * 1024)}G"
    if size_kb % 1024 == 0:
        return f"{size_kb // 1024}M"
    return f"{size_kb}K"


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


def usage(args, rt):
    """What the guests use, per host cell, rebuilt from libvirt."""
    if rt.has_slices:
        raise RequestError(
            "this host carves slices ([libvirt] slice_spec): its usage is "
            "the slices in use; see `nova-slices providers`",
            code="spawn.flag-not-applicable",
            key="usage",
        )
    with rt.host.lock():
        used = rt.driver.usage()
    if args.format == "json":
        emit_json(used.to_dict())
        return 0
    topology = rt.driver.topology
    rows = []
    for cell in topology.cells:
        u = used.cell(cell.id)
        rows.append(
            (
                str(cell.id),
                format_cpuset(u.pinned_cpus) or "-",
                str(u.cpu_usage),
                f"{u.memory_mb}/{cell.memory_mb}",
                ", ".join(f"{n} x {page_name(s)}" for s, n in u.pages) or "-",
            )
        )
    print(
        table(
            rows,
            ("CELL", "PINNED CPUS", "SHARED VCPUS", "MEMORY MB", "PAGES"),
        )
    )
    if used.pci_devices_in_use:
        print(
            "PCI devices in use: " + ", ".join(sorted(used.pci_devices_in_use))
        )
    return 0


def validate(args, rt):
    """A host without slices: its options, devices and a sample guest."""
    from nova_slices.dynamic.driver import DynamicDriver

    driver = DynamicDriver(rt.conf, rt.host, client=None)
    summary = driver.summary()
    sample = driver.sample_domain()
    if args.format == "json":
        emit_json(
            {"valid": True, "slices": [], "dynamic": summary, "errors": []}
        )
        return 0
    print(
        f"host {rt.host.hostname} runs dynamic guests: "
        f"{summary['dedicated_cpus']} dedicated and "
        f"{summary['shared_cpus']} shared CPUs in {summary['cells']} "
        f"NUMA cells; {len(summary['assignable_pci'])} assignable PCI "
        f"device(s); aliases: {', '.join(summary['aliases']) or 'none'}; "
        f"mdev types: {', '.join(summary['mdev_types']) or 'none'}"
    )
    print(
        "a sample pinned guest renders valid domain XML"
        if sample
        else "the sample pinned guest does not fit this host"
    )
    return 0
