"""Commands about the provider tree: sync, providers, flavor-specs.

``flavor-specs`` only reads the slice tree; the repair pass (and with it
Placement's client, keystoneauth and os-traits) is imported by ``sync``
alone.
"""

from nova_slices.cmd.output import emit_json
from nova_slices.cmd.render import render_providers
from nova_slices.slices import encoding
from nova_slices.slices.tree import load_tree


def sync(args, rt):
    from nova_slices.compute import repair

    result = rt.placing_driver.update_provider_tree()
    writes = rt.client.writes()
    repairs = repair.repair(rt.driver)
    if args.format == "json":
        emit_json(
            {
                "created": result.created,
                "updated": result.updated,
                "deleted": result.deleted,
                "kept": result.kept,
                "warnings": result.warnings,
                "placement_writes": writes,
                "repairs": repairs.to_dict(),
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
    for r in repairs.released:
        print(f"released consumer {r['consumer']}: {r['reason']}")
    for r in repairs.reclaimed:
        print(f"claimed guest {r['name']}'s allocation again")
    for r in repairs.not_reclaimed:
        print(
            f"warning: guest {r['name']} holds no allocation and it cannot "
            f"be claimed again: {r['reason']}"
        )
    for r in repairs.kept:
        print(f"kept consumer {r['consumer']} without a guest: {r['reason']}")
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
