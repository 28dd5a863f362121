"""A slice plan written out: configuration, templates, a tree (pure).

The templates are in the shipped style: one ``slice_<name>.xml.j2`` per
slice that extends ``_base.xml.j2`` (a copy of the shipped base) and
states only its GPUs, its guest cells (host cell, memory, cores with
their SMT siblings together), its emulator CPUs, its page size and its
guest sockets.  The configuration is the carried-over one
(:mod:`nova_slices.slices.generate_conf`) with ``slice_template_dir``
and one ``slice_spec`` per slice, headed by the tree and the notes.
Text only: the command writes the files.
"""

import json

from nova_slices.cpuset import format_cpuset
from nova_slices.slices.generate import format_size

BASE_TEMPLATE = "_base.xml.j2"
CONF_FILE = "nova-slices.conf"
TEMPLATE_DIR = "templates"
_CORES_PER_LINE = 7


def template_name(slice_):
    return f"slice_{slice_.name}.xml.j2"


def memory_text(mib):
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def _describe(s, plan):
    where = ", ".join(f"cell {c}" for c in s.host_cells)
    gpus = ", ".join(s.gpus)
    threads = len(s.cells[0].cores[0])
    cores = sum(len(c.cores) for c in s.cells)
    pages = "base" if plan.base_pages else format_size(plan.page_size_kb)
    return (
        f"Slice {s.name} ({s.resource_class}): GPU(s) {gpus} on host NUMA "
        f"{where}; {s.vcpus} vCPUs = {cores} cores x {threads} thread(s), "
        f"{memory_text(s.memory_mib)} of {pages} pages. Written by "
        "nova-slices generate-slices."
    )


def _cells_block(s):
    in_gib = all(c.memory_mib % 1024 == 0 for c in s.cells)
    lines = ["{% set cells = ["]
    for i, cell in enumerate(s.cells):
        memory = (
            f'"memory_gib": {cell.memory_mib // 1024}'
            if in_gib
            else f'"memory_mib": {cell.memory_mib}'
        )
        lines.append(
            f'  {{"host_node": {cell.host_cell}, {memory}, "cores": ['
        )
        cores = [json.dumps(list(c)) for c in cell.cores]
        rows = [
            cores[j : j + _CORES_PER_LINE]
            for j in range(0, len(cores), _CORES_PER_LINE)
        ]
        for j, row in enumerate(rows):
            comma = "," if j < len(rows) - 1 else ""
            lines.append("    " + ", ".join(row) + comma)
        lines.append("  ]}" + ("," if i < len(s.cells) - 1 else ""))
    lines.append("] %}")
    return lines


def template_text(s, plan):
    """The jinja2 template of one planned slice."""
    lines = [
        "{#- " + _describe(s, plan) + " -#}",
        '{% extends "' + BASE_TEMPLATE + '" %}',
        "{% set gpus = " + json.dumps(list(s.gpus)) + " %}",
        *_cells_block(s),
        '{% set emulator_cpuset = "' + format_cpuset(s.emulator_cpus) + '" %}',
        "{% set hugepage_kib = "
        + str(0 if plan.base_pages else plan.page_size_kb)
        + " %}",
    ]
    if s.guest_sockets > 1:
        lines.append(f"{{% set sockets = {s.guest_sockets} %}}")
    return "\n".join(lines) + "\n"


def slice_spec(s):
    value = {
        "name": s.name,
        "resource_class": s.resource_class,
        "template_file": template_name(s),
    }
    if s.parent:
        value["conflict_parent"] = s.parent
    return json.dumps(value)


def tree_lines(plan):
    """The slice tree as aligned ASCII lines, parents first."""
    rows = []

    def walk(s, prefix, last, top):
        branch = "" if top else prefix + ("`- " if last else "+- ")
        cells = format_cpuset(s.host_cells)
        rows.append(
            (
                branch + s.name,
                s.resource_class,
                s.gpus[0] if len(s.gpus) == 1 else f"{len(s.gpus)} GPUs",
                f"{s.vcpus} vCPUs",
                memory_text(s.memory_mib),
                ("cells " if len(s.cells) > 1 else "cell ") + cells,
            )
        )
        kids = plan.children(s.name)
        inner = "" if top else prefix + ("   " if last else "|  ")
        for i, kid in enumerate(kids):
            walk(kid, inner, i == len(kids) - 1, False)

    for root in [s for s in plan.slices if s.parent is None]:
        walk(root, "", True, True)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {3}  # vCPUs right-aligned
    return [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _value(value):
    """A value as an option line holds it (continuation lines indented)."""
    return str(value).replace("\n", "\n    ")


def conf_text(plan, carried, template_dir, hostname, command, notes):
    """The generated ``nova-slices.conf``."""
    pages = format_size(plan.page_size_kb) + (
        " (base pages)" if plan.base_pages else ""
    )
    head = [
        f"# Slices of host {hostname}, written by: {command}",
        f"# {len(plan.slices)} slices, memory in {pages} pages; CPUs kept "
        f"for the host (emulator threads): {format_cpuset(plan.host_cpus)}",
        "#",
        *("#   " + line for line in tree_lines(plan)),
    ]
    if notes:
        head += ["#", "# Notes:", *(f"#   - {n}" for n in notes)]
    if carried.sources:
        head += [
            "#",
            "# Carried over from: " + ", ".join(carried.sources),
        ]
    out = head
    slice_lines = [("slice_template_dir", template_dir)] + [
        ("slice_spec", slice_spec(s)) for s in plan.slices
    ]
    sections = list(carried.sections)
    if not any(name == "libvirt" for name, _ in sections):
        sections.append(("libvirt", ()))
    for name, lines in sections:
        if name == "libvirt":
            lines = tuple(lines) + tuple(slice_lines)
        out += ["", f"[{name}]"]
        out += [f"{key} = {_value(value)}" for key, value in lines]
    return "\n".join(out) + "\n"


def render(plan, carried, base_template, out_dir, hostname, command):
    """{path relative to out_dir: text} of every file to write."""
    template_dir = f"{out_dir.rstrip('/')}/{TEMPLATE_DIR}"
    notes = list(plan.notes) + list(carried.notes)
    files = {
        CONF_FILE: conf_text(
            plan, carried, template_dir, hostname, command, notes
        ),
        f"{TEMPLATE_DIR}/{BASE_TEMPLATE}": base_template,
    }
    for s in plan.slices:
        files[f"{TEMPLATE_DIR}/{template_name(s)}"] = template_text(s, plan)
    return files
