"""Commands that inspect without claiming: validate, topology, request, fit.

Each command imports what only it needs (the fitter, the request
builder, the drivers) when it runs: a process runs one command, and
``topology`` should not pay for the fitter's import, nor ``request``
for the host's.
"""

from nova_slices.cmd.output import emit_errors, emit_json
from nova_slices.errors import HostError, NovaSlicesError, RequestError


def validate(args, rt):
    """The host's configuration checked against the host: every slice
    template rendered, or the dynamic host's sets, devices and a sample
    guest (what start-up checks too)."""
    from nova_slices.compute import factory  # libvirt, Placement: only here

    driver = factory.open_driver(rt.conf, rt.host)
    report = driver.validate()
    errors = report["errors"]
    if args.format == "json":
        emit_json(dict(report, errors=[e.to_dict() for e in errors]))
    elif "dynamic" in report:
        summary = report["dynamic"]
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
            if report["sample_domain"]
            else "the sample pinned guest does not fit this host"
        )
    else:
        if errors:
            emit_errors(errors, "text")
        print(
            f"{len(report['slices'])} of {len(driver.tree.slices)} slice "
            f"templates render valid domain XML for host {rt.host.hostname}"
        )
    return 2 if errors else 0


def _read(path, what, limit=None):
    """The file's bytes; with ``limit``, at most one byte more than it,
    so that an oversized file (or /dev/zero) is refused unread."""
    from nova_slices import xmlinput

    try:
        if limit is not None:
            return xmlinput.read_bounded(path, limit)
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
    from nova_slices.host.views import render_text, topology_to_dict

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
    """Topology, devices and restrictions: a file's, or the host's.

    The host parsers (and lxml) are imported here: ``request`` reads no
    host."""
    from nova_slices.host.capabilities import (
        MAX_CAPABILITIES_BYTES,
        parse_capabilities,
    )
    from nova_slices.host.devices import (
        MAX_NODE_FILE_BYTES,
        parse_node_devices,
        split_node_file,
    )
    from nova_slices.host.restrictions import load_restrictions

    if args.capabilities_xml:
        path = args.capabilities_xml
        topo = parse_capabilities(
            _read(path, "--capabilities-xml", MAX_CAPABILITIES_BYTES),
            f"--capabilities-xml {path}",
        )
        docs = []
        for path in args.nodedev_xml:
            source = f"--nodedev-xml {path}"
            file_docs = split_node_file(
                _read(path, "--nodedev-xml", MAX_NODE_FILE_BYTES), source
            )
            # each file alone first, so that an error names its file;
            # then all together, for relations across files
            parse_node_devices(file_docs, topo, source)
            docs += file_docs
        return topo, parse_node_devices(docs, topo, "--nodedev-xml"), None
    topo = rt.host.topology()
    return topo, rt.host.devices(), load_restrictions(rt.conf, topo)


def _guest_request(args):
    """The GuestRequest of the flavor and image flags (exit 2 if bad)."""
    from nova_slices.request.build import build_request

    return build_request(
        args.vcpus,
        args.memory_mb,
        dict(args.extra_spec),
        dict(args.image_property),
    )


def fit(args, rt):
    """Fit a flavor (and image) on the host with the given usage."""
    from nova_slices.cmd.render import render_fit
    from nova_slices.fit.fitter import fit as fit_guest
    from nova_slices.fit.pci import parse_aliases

    req = _guest_request(args)
    topo, devices, restrictions = _host_inputs(args, rt)
    usage = _usage(args.usage_json, topo, devices) if args.usage_json else None
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


def _usage(path, topo, devices):
    """The --usage-json file, refused unless it describes this host."""
    from nova_slices.conf import jsonvalue
    from nova_slices.fit import claims

    source = f"--usage-json {path}"
    try:
        data = jsonvalue.loads(_read(path, "--usage-json"))
    except (ValueError, RecursionError) as exc:
        raise HostError(
            f"{source}: not JSON ({exc or 'nested too deeply'})",
            code="usage.invalid",
            key="--usage-json",
            value=path,
        ) from None
    usage = claims.usage_from_dict(data, source)
    try:
        claims.check_usage(topo, usage)
    except NovaSlicesError as exc:
        exc.message = f"{source}: {exc.message}"
        raise
    unknown = sorted(
        usage.pci_devices_in_use - {d.address for d in devices.pci}
    )
    if unknown:
        raise RequestError(
            f"{source}: pci_devices_in_use names {', '.join(unknown)}, not "
            "a PCI device of this host",
            code="usage.invalid",
            key="pci_devices_in_use",
            value=unknown,
        )
    return usage


def request(args, rt):
    """Validate a flavor and image; print the normalized request."""
    from nova_slices.cmd.render import render_request

    req = _guest_request(args)
    if args.format == "json":
        emit_json(req.to_dict())
        return 0
    print(render_request(req))
    return 0
