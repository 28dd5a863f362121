"""One NUMA cell's box: header, facts, memory bar, cores, devices.

Measures a cell (:func:`cell_needs`) so that cells of one kind share a
width, and builds the :class:`~nova_slices.host.svg.layout._Block` that
draws it; a cell with more than
:data:`~nova_slices.host.svg.style.COMPACT_CORES` cores is drawn as a
dense grid plus CPU ranges.
"""

import math

from nova_slices.cpuset import format_cpuset
from nova_slices.host.svg.devices import draw_entries, entries_height
from nova_slices.host.svg.layout import _Block
from nova_slices.host.svg.style import (
    COLORS,
    COMPACT_CORES,
    CORE_GAP,
    F_BODY,
    F_CELL,
    F_CORE,
    LINE,
    PAD,
    _pool_color,
    _pools_label,
    _text_width,
    memory_label,
)


def _cores(cell):
    """Sibling groups of the cell as lists of ids, by first id."""
    return [list(g) for g in cell.siblings()]


def _core_geometry(cores):
    threads = max(len(c) for c in cores)
    digits = max(len(str(i)) for c in cores for i in c)
    w = max(22, math.ceil(digits * F_CORE * 0.61) + 8)
    h = threads * (F_CORE + 1) + 6
    rows = math.ceil(len(cores) / 16)
    cols = math.ceil(len(cores) / rows)
    return w, h, cols, rows


def _compact_lines(cores):
    """'thread 0: 0-71' lines: the n-th thread of every core, as ranges."""
    threads = max(len(c) for c in cores)
    if threads == 1:
        return [f"CPUs {format_cpuset(c[0] for c in cores)}"]
    return [
        f"thread {t}: {format_cpuset(c[t] for c in cores if len(c) > t)}"
        for t in range(threads)
    ]


def _cell_facts(topology, cell):
    """Header and text lines of a cell: [(text, class, mono)]."""
    lines = []
    near = _nearest(topology, cell)
    if cell.memory_only:
        lines.append(
            ("memory only" + (f" · {near}" if near else ""), "body", False)
        )
        near = None
    else:
        cores = _cores(cell)
        threads = len(cell.cpus)
        text = f"{len(cores)} cores · {threads} threads"
        dies = {c.die for c in cell.cpus}
        if None not in dies:
            text += f" · die{'s' if len(dies) > 1 else ''} "
            text += format_cpuset(dies)
        lines.append((text, "body", False))
    sockets = cell.sockets
    if cell.socket is None:
        if cell.memory_only:
            why = "no distance to a CPU-bearing cell"
        elif len(sockets) > 1:
            known = sorted(s for s in sockets if s is not None)
            why = "CPUs span sockets " + format_cpuset(known)
            if None in sockets:
                why += " and unknown"
        else:
            why = "libvirt gives no socket id"
        lines.append((why, "body muted", False))
    if near:
        lines.append((near, "body muted", False))
    pooled = sum(p.total_kb for p in cell.pages)
    if pooled > cell.memory_kb:
        lines.append(
            (
                f"page pools hold {memory_label(pooled)}, more than the "
                "cell's memory",
                "body warn",
                False,
            )
        )
    return lines


def _nearest(topology, cell):
    others = [(d, o) for o, d in cell.distances if o != cell.id]
    if not others:
        return None
    if cell.memory_only:
        cpu = [
            (d, o)
            for d, o in others
            if not topology.cell(o) or topology.cell(o).cpus
        ]
        if cpu:
            d, o = min(cpu)
            return f"nearest CPU cell: {o} ({d})"
    best = min(d for d, _ in others)
    ids = [o for d, o in others if d == best]
    cells = "cells" if len(ids) > 1 else "cell"
    return f"nearest: {cells} {format_cpuset(ids)} (distance {best})"


def cell_needs(topology, cell, entries):
    """Minimum inner width of a cell's content (px)."""
    widths = [
        _text_width(f"cell {cell.id}", F_CELL, bold=True) + 90,
        _text_width(_pools_label(cell), F_BODY, mono=True),
        220,
    ]
    widths += [
        _text_width(t, F_BODY, mono=m)
        for t, _, m in _cell_facts(topology, cell)
    ]
    widths += [e.width() for e in entries]
    if cell.cpus:
        cores = _cores(cell)
        if len(cores) > COMPACT_CORES:
            widths += [
                _text_width(t, F_BODY, mono=True)
                for t in _compact_lines(cores)
            ]
            widths.append(24 * 8)
        else:
            w, _, cols, _ = _core_geometry(cores)
            widths.append(cols * (w + CORE_GAP) - CORE_GAP)
    return max(widths)


def cell_block(topology, cell, entries, inner_w):
    facts = _cell_facts(topology, cell)
    cores = _cores(cell) if cell.cpus else []
    compact = len(cores) > COMPACT_CORES
    core_h = 0
    if cores and compact:
        mini_rows = math.ceil(len(cores) / 24)
        core_h = mini_rows * 8 + 6 + LINE * len(_compact_lines(cores))
    elif cores:
        _, ch, _, rows = _core_geometry(cores)
        core_h = rows * (ch + CORE_GAP) - CORE_GAP + 8
    # header, fact lines, memory bar, pools line
    text_h = 22 + LINE * len(facts) + 14 + LINE
    h = PAD + text_h + core_h + entries_height(entries) + PAD
    w = inner_w + 2 * PAD

    def draw(svg, parent, x, y, row_h):
        cls = "memcell" if cell.memory_only else "cell"
        g = svg.group(parent, f"numa-cell g-{cls}")
        g.set("data-cell", str(cell.id))
        svg.rect(g, x, y, w, row_h, cls, rx=6)
        ix, iy = x + PAD, y + PAD
        svg.text(g, ix, iy + 12, f"cell {cell.id}", "hcell")
        svg.text(
            g,
            x + w - PAD,
            iy + 12,
            memory_label(cell.memory_kb),
            "hcell",
            anchor="end",
        )
        iy += 22
        for text, tcls, mono in facts:
            svg.text(g, ix, iy + 11, text, tcls + (" mono" if mono else ""))
            iy += LINE
        iy = _draw_memory(svg, g, cell, ix, iy, inner_w)
        if cores and compact:
            iy = _draw_compact(svg, g, cores, ix, iy + 4)
        elif cores:
            iy = _draw_cores(svg, g, cores, ix, iy + 4)
        draw_entries(svg, g, entries, ix, iy, inner_w)

    return _Block(w, h, draw)


def _draw_memory(svg, g, cell, x, y, w):
    bar = svg.group(g, "memory")
    svg.rect(bar, x, y + 2, w, 10, "bar", rx=2)
    # Scale to the memory, or to the pools when (as in some of libvirt's
    # test data) they add up to more than the cell has.
    scale = max(cell.memory_kb, sum(p.total_kb for p in cell.pages))
    cx = x
    for pool in sorted(cell.pages, key=lambda p: -p.size_kb) if scale else ():
        pw = w * pool.total_kb / scale
        if pw >= 0.5:
            svg.rect(bar, cx, y + 2, pw, 10, fill=_pool_color(cell, pool))
            cx += pw
    y += 14
    label = _pools_label(cell) or "no page pools reported"
    svg.text(g, x, y + 11, label, "body mono")
    return y + LINE


def _draw_cores(svg, g, cores, x, y):
    w, h, cols, _ = _core_geometry(cores)
    grid = svg.group(g, "cores")
    for i, ids in enumerate(cores):
        cx = x + (i % cols) * (w + CORE_GAP)
        cy = y + (i // cols) * (h + CORE_GAP)
        core = svg.group(grid, "core-box", "CPUs " + format_cpuset(ids))
        svg.rect(core, cx, cy, w, h, "core", rx=3)
        for t, cpu in enumerate(ids):
            svg.text(
                core,
                cx + w / 2,
                cy + 3 + (t + 1) * (F_CORE + 1) - 1,
                str(cpu),
                "core-id",
                anchor="middle",
            )
    rows = math.ceil(len(cores) / cols)
    return y + rows * (h + CORE_GAP) - CORE_GAP + 4


def _draw_compact(svg, g, cores, x, y):
    grid = svg.group(g, "cores-compact", f"{len(cores)} cores")
    for i in range(len(cores)):
        cx = x + (i % 24) * 8
        cy = y + (i // 24) * 8
        svg.rect(grid, cx, cy, 6, 6, rx=1, fill=COLORS["core_line"])
    y += math.ceil(len(cores) / 24) * 8 + 4
    for line in _compact_lines(cores):
        svg.text(g, x, y + 11, line, "body mono")
        y += LINE
    return y + 2
