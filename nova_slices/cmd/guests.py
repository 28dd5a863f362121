"""Commands about guests: spawn, destroy, release, list, usage, mdevs."""

import uuid as uuidlib

from nova_slices.cmd.output import emit_json, emit_rejection, table
from nova_slices.cmd.render import (
    cell_lines,
    guest_table,
    slice_guest_table,
    usage_table,
)
from nova_slices.compute import repair
from nova_slices.errors import (
    ConfigError,
    NoCandidates,
    NoFit,
    NovaSlicesError,
    RequestError,
)
from nova_slices.placement import urls
from nova_slices.placement.request_groups import flavor_request
from nova_slices.request.build import build_request

#: the embedded host keeps a guest as ``<name>.xml.running`` under
#: state_path: the longest name a file name of 255 bytes (NAME_MAX) leaves
NAME_MAX_BYTES = 255 - len(".xml.running")
#: libvirt's and Nova's own limit on a domain name (compute.base)
NAME_MAX_CHARS = 200


def check_guest_name(name):
    """Refuse a name before anything is claimed.

    The name becomes libvirt's domain name, text in the domain XML, a
    line of ``list`` and, on the embedded host, a file name: '/', control
    or other non-printable characters (newlines, escapes, bidi overrides)
    and names longer than a file name may be fail in one of them, or
    worse, after the claim.
    """
    why = None
    if not name:
        why = "it is empty"
    elif "/" in name:
        why = "it contains '/'"
    elif not name.isprintable():
        bad = next(c for c in name if not c.isprintable())
        why = f"it contains the non-printable character {bad!r}"
    elif len(name) > NAME_MAX_CHARS:
        why = f"it is {len(name)} characters long"
    elif len(name.encode("utf-8")) > NAME_MAX_BYTES:
        why = f"it is {len(name.encode('utf-8'))} bytes long in UTF-8"
    if why:
        raise RequestError(
            f"guest name {name!r} is invalid: {why}; a name is 1-"
            f"{NAME_MAX_CHARS} printable characters, at most "
            f"{NAME_MAX_BYTES} bytes in UTF-8, without '/'",
            code="guest.name-invalid",
            key="name",
            value=name,
        )


def refuse_flags(args, names, why):
    """Flags that have no meaning on this kind of host: exit 2."""
    for name in names:
        if getattr(args, name, None) not in (None, [], {}):
            flag = "--" + name.replace("_", "-")
            raise RequestError(
                f"{flag}: {why}",
                code="spawn.flag-not-applicable",
                key=flag,
                value=getattr(args, name),
            )


def spawn(args, rt):
    """A slice guest from --slice-class, or a dynamic one from a flavor."""
    check_guest_args(args)
    if not rt.has_slices:
        return _spawn_dynamic(args, rt, interfaces(args))
    refuse_flags(
        args,
        ("vcpus", "memory_mb", "disk_gb", "image_property"),
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
    rt.placing_driver.update_provider_tree()
    repair.repair(rt.driver)
    try:
        view = rt.driver.spawn(
            args.name,
            args.slice_class,
            instance_uuid=args.uuid,
            interfaces=interfaces(args),
            extra_specs=dict(args.extra_spec),
        )
    except NovaSlicesError as exc:
        if exc.code in SLICE_REFUSALS:
            return _rejected(args, rt, exc)
        raise
    if args.format == "json":
        emit_json(view.to_dict())
    else:
        bound = view.devices.get("pci", []) + view.devices.get("mdevs", [])
        print(
            f"spawned {view.name} ({view.instance_uuid}) on slice "
            f"{view.slice_name}"
            + (f" with {', '.join(bound)}" if bound else "")
        )
        for d in (view.device_locality or {}).get("devices", ()):
            print(
                f"  {d['resource_class']} {', '.join(d['bound'])} "
                f"({d['device']}, cell {d['numa_node']}): {d['reason']}"
            )
    return 0


#: a slice spawn's refusals that come with every slice's and device's state
SLICE_REFUSALS = (
    "slice.no-candidates",
    "slice.lost-race",
    "pci.no-device-on-cell",
    "pci.no-device-on-socket",
    "pci.socket-unknown",
)


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


def _spawn_dynamic(args, rt, interfaces):
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
    driver = rt.placing_driver
    driver.update_provider_tree()
    repair.repair(driver)
    extra_specs = dict(args.extra_spec)
    image_props = dict(args.image_property)
    disk_gb = 1 if args.disk_gb is None else args.disk_gb
    try:
        view = driver.spawn(
            args.name,
            args.vcpus,
            args.memory_mb,
            disk_gb,
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
        reasons = driver.explain_placement(flavor_request(request, disk_gb))
        return _refused(args, exc, reasons)
    if args.format == "json":
        emit_json(view.to_dict())
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


def check_guest_args(args):
    """Refuse a bad name or --uuid before anything reaches Placement or
    libvirt: the uuid becomes a consumer in Placement's URLs."""
    check_guest_name(args.name)
    if getattr(args, "uuid", None) is not None:
        args.uuid = urls.consumer_uuid(
            args.uuid, "--uuid", code="spawn.uuid-invalid"
        )


def destroy(args, rt):
    check_guest_args(args)
    repair.repair(rt.driver)
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


def release(args, rt):
    """Delete one consumer's allocation here (see compute.repair)."""
    repair.repair(rt.driver)
    done = repair.release_consumer(rt.driver, args.consumer, args.force)
    if args.format == "json":
        emit_json(done)
        return 0
    held = "; ".join(
        f"{rp}: {dict(sorted(res.items()))}"
        for rp, res in sorted(done["allocations"].items())
    )
    print(f"released consumer {done['consumer']}: {held}")
    if done["guest"]:
        print(
            f"guest {done['guest']} still runs without an allocation; the "
            "next sync claims its share again"
        )
    return 0


def list_guests(args, rt):
    views, problems = rt.driver.guests()
    if args.format == "json":
        emit_json(
            {
                "guests": [v.to_dict() for v in views],
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
    if views:
        print(
            slice_guest_table(views) if rt.has_slices else guest_table(views)
        )
    else:
        print("no guests")
    for p in problems:
        print(f"warning [{p.code}]: {p.message}")
    return 0


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
    print(usage_table(rt.driver.topology, used))
    if used.pci_devices_in_use:
        print(
            "PCI devices in use: " + ", ".join(sorted(used.pci_devices_in_use))
        )
    return 0


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
