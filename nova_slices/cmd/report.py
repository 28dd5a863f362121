"""Commands about the provider tree: sync, providers, flavor-specs."""

from nova_slices.cmd.output import emit_json
from nova_slices.cmd.render import render_providers
from nova_slices.slices import encoding
from nova_slices.slices.tree import load_tree


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
