"""The subcommands: each takes parsed args and a Runtime, returns status."""

import json
import uuid as uuidlib

from nova_slices.cmd.output import (
    emit_errors,
    emit_json,
    emit_rejection,
    table,
)
from nova_slices.cpuset import format_cpuset
from nova_slices.errors import (
    ConfigError,
    HostError,
    NovaSlicesError,
    RequestError,
)
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import parse_node_devices, split_node_file
from nova_slices.host.restrictions import load_restrictions
from nova_slices.host.views import render_text, topology_to_dict
from nova_slices.slices import encoding
from nova_slices.slices.tree import load_tree


def validate(args, rt):
    """Configuration, slice tree, templates and a dry render of each."""
    if not rt.has_slices:
        from nova_slices.cmd.dynamic import validate as validate_dynamic

        return validate_dynamic(args, rt)
    tree = load_tree(rt.conf)
    errors = []
    checked = []
    try:
        load_restrictions(rt.conf, rt.host.topology())
    except NovaSlicesError as exc:
        errors.append(exc)
    from nova_slices.driver import SliceDriver

    driver = SliceDriver(rt.conf, rt.host, client=None)
    for s in tree.slices.values():
        try:
            driver.render(f"validate-{s.name}", str(uuidlib.uuid4()), s.name)
            checked.append(s.name)
        except NovaSlicesError as exc:
            errors.append(exc)
    if args.format == "json":
        emit_json(
            {
                "valid": not errors,
                "slices": checked,
                "errors": [e.to_dict() for e in errors],
            }
        )
    else:
        if errors:
            emit_errors(errors, "text")
        print(
            f"{len(checked)} of {len(tree.slices)} slice templates render "
            f"valid domain XML for host {rt.host.hostname}"
        )
    return 2 if errors else 0


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise HostError(
            f"{what} {path}: cannot read: {exc.strerror}",
            code="host.file-unreadable",
            key=what,
            value=path,
        ) from None


def topology(args, rt):
    """The host model: JSON contract, a readable tree, or a picture."""
    topo, devices, restrictions = _host_inputs(args, rt)
    if args.format == "json":
        emit_json(topology_to_dict(topo, devices, restrictions))
    elif args.format == "svg":
        from nova_slices.host.svg import render_svg

        print(render_svg(topo, devices))
    else:
        print(render_text(topo, devices, restrictions))
    return 0


def _host_inputs(args, rt):
    """Topology, devices and restrictions: a file's, or the host's."""
    if args.capabilities_xml:
        topo = parse_capabilities(
            _read(args.capabilities_xml, "--capabilities-xml")
        )
        docs = []
        for path in args.nodedev_xml:
            docs += split_node_file(_read(path, "--nodedev-xml"))
        return topo, parse_node_devices(docs, topo), None
    topo = rt.host.topology()
    return topo, rt.host.devices(), load_restrictions(rt.conf, topo)


def fit(args, rt):
    """Fit a flavor (and image) on the host with the given usage."""
    from nova_slices.fit import claims
    from nova_slices.fit.fitter import fit as fit_guest
    from nova_slices.fit.pci import parse_aliases
    from nova_slices.request.build import build_request

    req = build_request(
        args.vcpus,
        args.memory_mb,
        dict(args.extra_spec),
        dict(args.image_property),
    )
    topo, devices, restrictions = _host_inputs(args, rt)
    usage = None
    if args.usage_json:
        try:
            data = json.loads(_read(args.usage_json, "--usage-json"))
        except ValueError as exc:
            raise HostError(
                f"--usage-json {args.usage_json}: not JSON ({exc})",
                code="usage.invalid",
                key="--usage-json",
                value=args.usage_json,
            ) from None
        usage = claims.usage_from_dict(data)
        claims.check_usage(topo, usage)
    result = fit_guest(
        topo,
        req,
        usage,
        restrictions,
        devices,
        parse_aliases(rt.conf.pci.alias),
        pack=rt.conf.compute.packing_host_numa_cells_allocation_strategy,
    )
    fits = result.to_dict()["fits"]
    if args.format == "json":
        emit_json(result.to_dict())
    else:
        print(render_fit(result))
    return 0 if fits else 1


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


def request(args, rt):
    """Validate a flavor and image; print the normalized request."""
    from nova_slices.request.build import build_request

    req = build_request(
        args.vcpus,
        args.memory_mb,
        dict(args.extra_spec),
        dict(args.image_property),
    )
    if args.format == "json":
        emit_json(req.to_dict())
        return 0
    print(render_request(req))
    return 0


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


def sync(args, rt):
    result = rt.driver.update_provider_tree()
    if args.format == "json":
        emit_json(
            {
                "created": result.created,
                "updated": result.updated,
                "deleted": result.deleted,
                "kept": result.kept,
                "warnings": result.warnings,
                "placement_writes": rt.client.writes(),
            }
        )
        return 0
    for label, names in (
        ("created", result.created),
        ("updated", result.updated),
        ("deleted", result.deleted),
        ("kept (holds allocations)", result.kept),
    ):
        if names:
            print(f"{label}: {', '.join(names)}")
    if not result.changed:
        print("provider tree already up to date (no write)")
    return 0


def providers(args, rt):
    views = rt.driver.provider_views()
    if args.format == "json":
        emit_json(views)
        return 0
    print(render_providers(views))
    if not all(v["reported"] for v in views):
        print("run `nova-slices sync` to report the missing providers")
    return 0


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


def flavor_specs(args, rt):
    specs = encoding.all_flavor_specs(load_tree(rt.conf))
    if args.format == "json":
        emit_json(specs)
        return 0
    for rc, form in specs.items():
        print(f"# {rc}")
        print("# Placement query (what spawn sends; needs microversion 1.36):")
        for key, value in form.items():
            if key == "nova_flavor":
                continue
            for v in value if isinstance(value, list) else [value]:
                print(f"#   {key}={v}")
        props = " ".join(
            f"--property {k}={v}" for k, v in form["nova_flavor"].items()
        )
        print(f"openstack flavor set FLAVOR {props}")
        print()
    return 0


def spawn(args, rt):
    from nova_slices.cmd import dynamic

    if not rt.has_slices:
        return dynamic.spawn(args, rt, interfaces(args))
    dynamic.refuse_flags(
        args,
        ("vcpus", "memory_mb", "image_property"),
        "this host carves slices ([libvirt] slice_spec): a slice's "
        "template fixes the guest's CPUs and memory",
    )
    if not args.slice_class:
        raise RequestError(
            "this host carves slices ([libvirt] slice_spec): give "
            "--slice-class RC (one of "
            + ", ".join(sorted(rt.driver.tree.classes))
            + ")",
            code="spawn.slice-class-required",
            key="--slice-class",
        )
    rt.driver.update_provider_tree()
    try:
        view = rt.driver.spawn(
            args.name,
            args.slice_class,
            instance_uuid=args.uuid,
            interfaces=interfaces(args),
            extra_specs=dict(args.extra_spec),
        )
    except NovaSlicesError as exc:
        if exc.code in ("slice.no-candidates", "slice.lost-race"):
            return _rejected(args, rt, exc)
        raise
    if args.format == "json":
        emit_json(_guest_json(view))
    else:
        bound = view.devices.get("pci", []) + view.devices.get("mdevs", [])
        print(
            f"spawned {view.name} ({view.instance_uuid}) on slice "
            f"{view.slice_name}"
            + (f" with {', '.join(bound)}" if bound else "")
        )
    return 0


def _rejected(args, rt, exc):
    reasons = rt.driver.explain_unavailable(
        args.slice_class, dict(args.extra_spec)
    )
    return emit_rejection(
        args.format,
        exc,
        reasons,
        lambda r: (
            f"slice {r['slice']}: {r['reason']}"
            if "slice" in r
            else f"device {r['device'] or '-'}: {r['reason']}"
        ),
    )


def interfaces(args):
    """The --network flags as the interfaces a domain gets."""
    return [
        {
            "type": "network",
            "source": net,
            "mac_address": _mac(args.name, i),
            "model": "virtio",
        }
        for i, net in enumerate(args.network)
    ]


def _mac(name, index):
    digest = uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{name}/{index}").bytes
    return "52:54:00:%02x:%02x:%02x" % (digest[0], digest[1], digest[2])


def _guest_json(view):
    return {
        "name": view.name,
        "instance_uuid": view.instance_uuid,
        "slice": view.slice_name,
        "resource_class": view.resource_class,
        "state": view.state,
        "allocations": view.allocations,
        "devices": view.devices,
        "flavor": view.flavor,
        "cells": list(view.cells),
    }


def destroy(args, rt):
    record = rt.driver.destroy(args.name)
    if args.format == "json":
        emit_json(
            {
                "name": args.name,
                "instance_uuid": record.instance_uuid if record else None,
                "slice": record.slice_name if record else None,
                "devices": {
                    "pci": list(record.pci) if record else [],
                    "mdevs": [m[0] for m in record.mdevs] if record else [],
                },
            }
        )
    else:
        freed = []
        if record and record.slice_name:
            freed.append(f"slice {record.slice_name}")
        if record:
            freed += list(record.pci) + [m[0] for m in record.mdevs]
        print(
            f"destroyed {args.name}"
            + (f"; released {', '.join(freed)}" if freed else "")
        )
    return 0


def list_guests(args, rt):
    views, problems = rt.driver.guests()
    if args.format == "json":
        emit_json(
            {
                "guests": [_guest_json(v) for v in views],
                "discrepancies": [
                    {
                        "code": p.code,
                        "instance_uuid": p.instance_uuid,
                        "name": p.name,
                        "message": p.message,
                    }
                    for p in problems
                ],
            }
        )
        return 0
    if views and not rt.has_slices:
        from nova_slices.cmd.dynamic import guest_table

        print(guest_table(views))
    elif views:
        print(
            table(
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
        )
    else:
        print("no guests")
    for p in problems:
        print(f"warning [{p.code}]: {p.message}")
    return 0


def usage(args, rt):
    from nova_slices.cmd.dynamic import usage as dynamic_usage

    return dynamic_usage(args, rt)


def mdevs(args, rt):
    """The mdevs we created (survives restarts: kept under state_path)."""
    manager = rt.driver.devices
    if manager is None:
        raise ConfigError(
            "no device is configured: set [devices] enabled_mdev_types "
            "(and [mdev_<type>] device_addresses)",
            code="config.no-mdev-types",
            key="[devices] enabled_mdev_types",
        )
    with rt.host.lock():
        recreated = manager.recreate_missing() if args.recreate else []
        views = manager.created()
    if args.format == "json":
        emit_json(
            {"mdevs": [v.to_dict() for v in views], "recreated": recreated}
        )
        return 0
    for uuid in recreated:
        print(f"recreated mdev {uuid}")
    if not views:
        print("nova-slices has created no mdev on this host")
        return 0
    print(
        table(
            [
                (
                    v.uuid,
                    v.type,
                    v.parent,
                    "yes" if v.present else "MISSING",
                    v.used_by or "-",
                    v.created_at,
                )
                for v in views
            ],
            ("UUID", "TYPE", "PARENT", "IN KERNEL", "USED BY", "CREATED"),
        )
    )
    return 0
