"""``generate-slices``: a slice host's configuration and templates,
written from the configured host's hardware.

The edge around three pure steps: plan the slices
(:mod:`nova_slices.slices.generate`), carry the rest of the configuration
over (:mod:`nova_slices.slices.generate_conf`), render both
(:mod:`nova_slices.slices.generate_render`).  Here: reading the host and
the configuration, and writing the files into an empty directory.
"""

import os
import shlex

from nova_slices import data
from nova_slices.cmd.output import emit_json
from nova_slices.conf import known_opts
from nova_slices.conf.check import raw_values
from nova_slices.devices.mdev_config import resolve_mdev_types
from nova_slices.host.restrictions import load_restrictions
from nova_slices.slices import generate
from nova_slices.slices.generate_conf import carry, host_selection
from nova_slices.slices.generate_options import parse_options
from nova_slices.slices.generate_render import (
    BASE_TEMPLATE,
    CONF_FILE,
    render,
    tree_lines,
)

_FLAGS = (
    ("--gpu", "gpu"),
    ("--gpu-class", "gpu_class"),
    ("--reserved-cores", "reserved_cores"),
    ("--reserved-cpus", "reserved_cpus"),
    ("--reserved-memory-mb", "reserved_memory_mb"),
    ("--page-size", "page_size"),
)


def _refuse_output(path, why, code):
    return generate.refuse(
        f"--output-dir {path} {why}", code, "--output-dir", path
    )


def _check_output_dir(path):
    """An empty or new directory: nothing of the operator's is replaced."""
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise _refuse_output(
            path,
            "is not a directory; give a new or empty directory",
            "output-not-directory",
        )
    entries = sorted(os.listdir(path))
    if entries:
        shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
        raise _refuse_output(
            path,
            f"is not empty ({shown}); give a new or empty directory: "
            "generate-slices never replaces files",
            "output-not-empty",
        )


def _write(out_dir, files):
    try:
        for name, text in files.items():
            path = os.path.join(out_dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # "x": a file that appeared since the check is not replaced
            with open(path, "x", encoding="utf-8") as f:
                f.write(text)
    except OSError as exc:
        raise _refuse_output(
            out_dir,
            f"cannot be written: {exc.filename}: {exc.strerror}",
            "output-unwritable",
        ) from None


def configured_taken(conf, topology, devices):
    """What the configuration gives guests besides slices, and its mdev
    types (resolved and checked against the host)."""
    mdev_types = (
        resolve_mdev_types(conf, devices)
        if conf.devices.enabled_mdev_types
        else ()
    )
    restrictions = load_restrictions(conf, topology)
    return mdev_types, generate.Taken(
        {p: f"[mdev_{t.type}]" for t in mdev_types for p in t.parents},
        {
            (cell.id, pool.size_kb): restrictions.reserved(
                cell.id, pool.size_kb
            )
            for cell in topology.cells
            for pool in cell.pages
        },
    )


def carry_conf(conf, devices, mdev_types, gpus):
    """The input configuration carried over for slice GPUs ``gpus``."""
    return carry(
        raw_values(conf),
        {key for key, opt in known_opts(conf).items() if opt.multi},
        host_selection(conf.libvirt),
        conf.pci.device_spec,
        conf.pci.alias,
        mdev_types,
        devices,
        [g.address for g in gpus],
    )


def _command(args, out_dir):
    words = ["nova-slices"]
    for path in args.config_file:
        words += ["--config-file", os.path.abspath(path)]
    words += ["generate-slices", "--output-dir", out_dir]
    for flag, dest in _FLAGS:
        value = getattr(args, dest)
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                words += [flag, v]
    return shlex.join(words)


def run(args, rt):
    out_dir = os.path.abspath(args.output_dir)
    _check_output_dir(out_dir)
    options = parse_options(
        args.gpu,
        args.gpu_class,
        args.reserved_cores,
        args.reserved_cpus,
        args.reserved_memory_mb,
        args.page_size,
    )
    conf, host = rt.conf, rt.host
    topology, devices = host.topology(), host.devices()
    mdev_types, taken = configured_taken(conf, topology, devices)
    plan = generate.plan(topology, devices, options, taken)
    carried = carry_conf(conf, devices, mdev_types, plan.gpus)
    with open(
        os.path.join(data.templates_dir(), BASE_TEMPLATE), encoding="utf-8"
    ) as f:
        base = f.read()
    files = render(
        plan, carried, base, out_dir, host.hostname, _command(args, out_dir)
    )
    _write(out_dir, files)
    notes = list(plan.notes) + list(carried.notes)
    conf_path = os.path.join(out_dir, CONF_FILE)
    if args.format == "json":
        emit_json(_to_dict(plan, out_dir, conf_path, files, notes))
        return 0
    print(f"host {host.hostname}: {len(plan.slices)} slices in {conf_path}")
    for line in tree_lines(plan):
        print("  " + line)
    for note in notes:
        print(f"note: {note}")
    print(f"check them: nova-slices --config-file {conf_path} validate")
    return 0


def _to_dict(plan, out_dir, conf_path, files, notes):
    return {
        "output_dir": out_dir,
        "config_file": conf_path,
        "files": sorted(files),
        "page_size_kb": plan.page_size_kb,
        "base_pages": plan.base_pages,
        "host_cpus": sorted(plan.host_cpus),
        "slices": [
            {
                "name": s.name,
                "resource_class": s.resource_class,
                "conflict_parent": s.parent,
                "gpus": list(s.gpus),
                "vcpus": s.vcpus,
                "memory_mb": s.memory_mib,
                "host_cells": list(s.host_cells),
                "pinned_cpus": sorted(s.pinned_cpus),
                "emulator_cpus": sorted(s.emulator_cpus),
            }
            for s in plan.slices
        ],
        "notes": notes,
    }
