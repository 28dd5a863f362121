"""Draw a host's NUMA topology and PCI devices as one SVG picture.

``render_svg(topology, devices=None, title=None)`` is pure: it reads the
immutable host model and returns SVG text, built as an element tree (so
every label is escaped by the serializer, never pasted into markup).

What the picture shows, top to bottom:

* a title with the host summary and a legend;
* one labelled box per socket holding its cells: CPU-bearing cells (solid
  blue border) with one small box per core listing its thread ids
  (siblings stacked in one box), memory-only cells (dashed orange border,
  "memory only") with the socket they are nearest to; a cell with more
  than :data:`COMPACT_CORES` cores switches to a dense grid plus CPU
  ranges;
* each cell's memory (GiB), a bar split by page pool, the pools
  ("1G x 224 · 2M x 1,024 · 4K x 7,864,320") and its nearest neighbour;
* the PCI devices on the cell they hang off: address, vendor:product,
  kind (from the PCI class), PF with its VFs grouped into one line, mdev
  types with their free instances;
* cells with no single known socket in an "unknown socket" group, devices
  with no NUMA node (or one the host does not have) in a "no NUMA
  affinity" strip;
* the NUMA distance matrix as a heat map.

Sizes come from a text-width estimate for DejaVu Sans / DejaVu Sans Mono
(what ``rsvg-convert`` uses on Debian), rounded up so labels fit.
"""

import math

from lxml import etree

from nova_slices.cpuset import format_cpuset
from nova_slices.host.devices import TYPE_PF, TYPE_VF

SVG_NS = "http://www.w3.org/2000/svg"
SANS = "DejaVu Sans, Verdana, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"

#: a cell with more cores than this is drawn as a dense grid plus ranges
COMPACT_CORES = 64
#: widest the socket rows grow before cells wrap
TARGET_WIDTH = 1560
#: longest free-text label (mdev type descriptions) before "…"
MAX_LABEL = 44

MARGIN = 24
PAD = 12
GAP = 14
CORE_GAP = 3
LINE = 16

#: font sizes, px
F_TITLE, F_SUB, F_SOCKET, F_CELL, F_BODY, F_CORE = 22, 13, 16, 13, 11, 10

COLORS = {
    "bg": "#f8fafc",
    "ink": "#0f172a",
    "muted": "#475569",
    "socket": "#e9eef5",
    "socket_line": "#64748b",
    "cell": "#ffffff",
    "cell_line": "#2563eb",
    "mem": "#fff7ed",
    "mem_line": "#ea580c",
    "core": "#dbeafe",
    "core_line": "#93c5fd",
    "core_ink": "#1e3a8a",
    "bar": "#f1f5f9",
    "bar_line": "#94a3b8",
    "base": "#cbd5e1",
}
#: memory bar colour per hugepage size (KiB); the base pool is grey
POOL_COLORS = {
    2048: "#c4b5fd",
    32768: "#a78bfa",
    524288: "#8b5cf6",
    1048576: "#6d28d9",
    16777216: "#4c1d95",
}
POOL_OTHER = "#a78bfa"
#: device kind by PCI class prefix (most specific first): label, colour
KINDS = (
    ("0108", "NVMe", "#b45309"),
    ("0b40", "ACC", "#be185d"),
    ("03", "GPU", "#15803d"),
    ("02", "NIC", "#0e7490"),
    ("01", "STOR", "#b45309"),
    ("12", "ACC", "#be185d"),
)
KIND_OTHER = ("PCI", "#64748b")
KIND_MDEV = ("MDEV", "#7c3aed")

STYLE = f"""
text {{ font-family: {SANS}; fill: {COLORS["ink"]}; }}
.mono {{ font-family: {MONO}; }}
.title {{ font-size: {F_TITLE}px; font-weight: bold; }}
.sub {{ font-size: {F_SUB}px; fill: {COLORS["muted"]}; }}
.hsock {{ font-size: {F_SOCKET}px; font-weight: bold; }}
.hcell {{ font-size: {F_CELL}px; font-weight: bold; }}
.body {{ font-size: {F_BODY}px; }}
.muted {{ fill: {COLORS["muted"]}; }}
.warn {{ fill: #b91c1c; }}
.core-id {{ font-family: {MONO}; font-size: {F_CORE}px;
  fill: {COLORS["core_ink"]}; }}
.kind {{ font-size: 9px; font-weight: bold; fill: #ffffff; }}
.dist {{ font-family: {MONO}; font-size: 9px; }}
.socket {{ fill: {COLORS["socket"]}; stroke: {COLORS["socket_line"]};
  stroke-width: 1.5; }}
.unknown {{ fill: #f8fafc; stroke: #94a3b8; stroke-width: 1.5;
  stroke-dasharray: 7 4; }}
.cell {{ fill: {COLORS["cell"]}; stroke: {COLORS["cell_line"]};
  stroke-width: 1.5; }}
.memcell {{ fill: {COLORS["mem"]}; stroke: {COLORS["mem_line"]};
  stroke-width: 1.5; stroke-dasharray: 5 3; }}
.core {{ fill: {COLORS["core"]}; stroke: {COLORS["core_line"]}; }}
.bar {{ fill: {COLORS["bar"]}; stroke: {COLORS["bar_line"]};
  stroke-width: 0.75; }}
.rule {{ stroke: #cbd5e1; stroke-width: 1; }}
"""


# --- text and small helpers ------------------------------------------------


def _text_width(text, size, mono=False, bold=False):
    """Generous width estimate (px) of ``text`` in DejaVu at ``size``."""
    if mono:
        return math.ceil(len(text) * size * 0.61) + 2
    em = sum(_char_em(ch) for ch in text) * (1.1 if bold else 1.0)
    return math.ceil(em * size) + 2


def _char_em(ch):
    """Advance of one DejaVu Sans glyph in em, rounded up."""
    if ch.isdigit():
        return 0.64
    if ch.isupper():
        return 0.74
    if ch in " .,:;·'|!il":
        return 0.34
    if ch in "()[]-/":
        return 0.42
    return 0.62 if ch.isascii() else 0.8


def _clip(text, limit=MAX_LABEL):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def page_label(size_kb):
    for unit, factor in (("G", 1024 * 1024), ("M", 1024), ("K", 1)):
        if size_kb >= factor and size_kb % factor == 0:
            return f"{size_kb // factor}{unit}"
    return f"{size_kb}K"


def memory_label(kb):
    gib = kb / (1024 * 1024)
    if kb == 0:
        return "0 GiB"
    if gib >= 1024:
        return f"{gib / 1024:,.1f} TiB".replace(".0 ", " ")
    if gib >= 10 or gib == int(gib):
        return f"{gib:,.0f} GiB"
    if gib >= 1:
        return f"{gib:.1f} GiB"
    return f"{kb / 1024:,.0f} MiB"


def _pools_label(cell):
    pools = sorted(cell.pages, key=lambda p: -p.size_kb)
    return " · ".join(f"{page_label(p.size_kb)} × {p.total:,}" for p in pools)


def _pool_color(cell, pool):
    if pool.size_kb == min(p.size_kb for p in cell.pages):
        return COLORS["base"]
    return POOL_COLORS.get(pool.size_kb, POOL_OTHER)


def _kind(device):
    cls = device.class_id or ""
    for prefix, label, color in KINDS:
        if cls.startswith(prefix):
            return label, color
    return KIND_OTHER


class _Svg:
    """Element factory bound to one document."""

    def __init__(self, root):
        self.root = root

    def el(self, parent, tag, **attrs):
        attrs = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return etree.SubElement(
            parent,
            f"{{{SVG_NS}}}{tag}",
            {k: _fmt(v) for k, v in attrs.items() if v is not None},
        )

    def group(self, parent, cls=None, tip=None):
        g = self.el(parent, "g", class_=cls)
        if tip:
            self.el(g, "title").text = tip
        return g

    def rect(self, parent, x, y, w, h, cls=None, rx=None, **attrs):
        return self.el(
            parent,
            "rect",
            x=x,
            y=y,
            width=w,
            height=h,
            rx=rx,
            class_=cls,
            **attrs,
        )

    def text(self, parent, x, y, text, cls=None, anchor=None, **attrs):
        el = self.el(
            parent, "text", x=x, y=y, class_=cls, text_anchor=anchor, **attrs
        )
        el.text = text
        return el


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return str(value)


class _Block:
    """Something measured (w, h) that draws itself at (x, y).

    ``draw(parent, x, y, h)`` gets the height of its row, so boxes in one
    row can stretch to the same height.
    """

    def __init__(self, w, h, draw):
        self.w, self.h, self.draw = w, h, draw


def _flow(blocks, max_width, gap=GAP):
    """Rows of blocks (balanced: 5 items at 3 a row -> 3 + 2)."""
    if not blocks:
        return []
    widest = max(b.w for b in blocks)
    fit = max(1, int((max_width + gap) // (widest + gap)))
    rows = math.ceil(len(blocks) / fit)
    per_row = math.ceil(len(blocks) / rows)
    return [blocks[i : i + per_row] for i in range(0, len(blocks), per_row)]


def _flow_size(rows, gap=GAP):
    if not rows:
        return 0, 0
    width = max(sum(b.w for b in r) + gap * (len(r) - 1) for r in rows)
    height = sum(max(b.h for b in r) for r in rows) + gap * (len(rows) - 1)
    return width, height


def _draw_flow(svg, parent, rows, x, y, gap=GAP):
    for row in rows:
        height = max(b.h for b in row)
        cx = x
        for b in row:
            b.draw(svg, parent, cx, y, height)
            cx += b.w + gap
        y += height + gap
    return y - gap if rows else y


# --- devices ---------------------------------------------------------------


class _DeviceEntry:
    """One drawn device: a PCI device or PF with its VFs, or stray VFs."""

    def __init__(self, lines, kind, tip, address=None):
        #: [(text, mono)]: the first is the device line
        self.lines = lines
        self.kind = kind
        self.tip = tip
        self.address = address

    def width(self):
        pill = 40
        return pill + max(
            _text_width(t, F_BODY, mono=m) + (0 if i == 0 else 12)
            for i, (t, m) in enumerate(self.lines)
        )

    def height(self):
        return LINE * len(self.lines)

    def draw(self, svg, parent, x, y):
        g = svg.group(parent, "device", self.tip)
        if self.address:
            g.set("data-address", self.address)
        label, color = self.kind
        svg.rect(g, x, y + 2, 34, 13, rx=3, fill=color)
        svg.text(g, x + 17, y + 12, label, "kind", anchor="middle")
        for i, (text, mono) in enumerate(self.lines):
            cls = "body mono" if mono else "body"
            indent = 40 if i == 0 else 52
            if i:
                svg.el(
                    g,
                    "path",
                    d=f"M{x + 44},{y + i * LINE - 2} v8 h5",
                    fill="none",
                    stroke="#94a3b8",
                )
            svg.text(
                g,
                x + indent,
                y + 12 + i * LINE,
                text,
                cls if i == 0 else cls + " muted",
            )


def _vf_summary(vfs, pf):
    addresses = sorted(v.address for v in vfs)
    count = f"{len(addresses)} VF" + ("s" if len(addresses) != 1 else "")
    if pf is not None and pf.max_vfs:
        count += f" of max {pf.max_vfs}"
    if not addresses:
        return count
    if len(addresses) == 1:
        return f"{count}: {addresses[0]}"
    return f"{count}: {addresses[0]} … {addresses[-1]}"


def _mdev_lines(device, mdevs):
    lines = []
    for t in device.mdev_types:
        text = f"mdev {t.name}"
        if t.description:
            text += f" “{t.description}”"
        lines.append((_clip(text) + f" · {t.available_instances} free", True))
    mine = [m for m in mdevs if m.parent_address == device.address]
    if mine:
        types = sorted({m.type for m in mine})
        lines.append(
            (_clip(f"{len(mine)} mdev(s) created: {', '.join(types)}"), True)
        )
    return lines


def _device_entries(devices):
    """{numa node or None: [_DeviceEntry]}, VFs grouped under their PF."""
    if devices is None:
        return {}
    by_address = devices.by_address()
    vfs_of = {}
    for d in devices.pci:
        if d.dev_type == TYPE_VF:
            vfs_of.setdefault(d.parent_address, []).append(d)
    out = {}
    for d in devices.pci:
        if d.dev_type == TYPE_VF:
            continue
        head = f"{d.address}  {d.vendor_id}:{d.product_id}"
        lines = []
        if d.dev_type == TYPE_PF:
            head += "  PF"
            lines.append((_vf_summary(vfs_of.pop(d.address, []), d), True))
        lines = [(head, True)] + lines + _mdev_lines(d, devices.mdevs)
        tip = f"{d.name or d.address} (class {d.class_id or '?'}, IOMMU "
        tip += f"group {d.iommu_group})"
        if d.dev_type == TYPE_PF and d.vf_addresses:
            tip += "; VFs " + ", ".join(d.vf_addresses)
        out.setdefault(d.numa_node, []).append(
            _DeviceEntry(lines, _kind(d), tip, d.address)
        )
    # VFs whose PF libvirt did not list: one entry per (node, PF address)
    stray = {}
    for parent, vfs in vfs_of.items():
        for vf in vfs:
            stray.setdefault((vf.numa_node, parent), []).append(vf)
    for (node, parent), vfs in sorted(
        stray.items(), key=lambda kv: (kv[0][1] or "", kv[0][0] or -1)
    ):
        first = vfs[0]
        head = f"{_vf_summary(vfs, by_address.get(parent))}"
        lines = [(head, True), (f"PF {parent} not listed", True)]
        lines += [ln for vf in vfs for ln in _mdev_lines(vf, devices.mdevs)]
        tip = "VFs " + ", ".join(vf.address for vf in vfs)
        out.setdefault(node, []).append(
            _DeviceEntry(lines, _kind(first), tip, first.address)
        )
    # mdevs whose parent is not a listed PCI device: NUMA node unknown
    for m in devices.mdevs:
        if m.parent_address not in by_address:
            lines = [(f"mdev {m.uuid}", True), (f"type {_clip(m.type)}", True)]
            out.setdefault(None, []).append(
                _DeviceEntry(lines, KIND_MDEV, f"{m.name}: parent not listed")
            )
    return out


def _entries_height(entries):
    if not entries:
        return 0
    return 8 + sum(e.height() for e in entries) + 4 * (len(entries) - 1)


def _draw_entries(svg, parent, entries, x, y, w):
    if not entries:
        return
    svg.el(parent, "line", x1=x, y1=y + 2, x2=x + w, y2=y + 2, class_="rule")
    y += 8
    for e in entries:
        e.draw(svg, parent, x, y)
        y += e.height() + 4


# --- cells -----------------------------------------------------------------


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


def _cell_needs(topology, cell, entries):
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


def _cell_block(topology, cell, entries, inner_w):
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
    h = PAD + text_h + core_h + _entries_height(entries) + PAD
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
        _draw_entries(svg, g, entries, ix, iy, inner_w)

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


# --- groups: sockets, unknown socket, no NUMA affinity ---------------------


def _group_block(title, summary, flows, cls, width, socket=None):
    """A labelled box around rows of blocks; ``flows``: list of rows."""
    heights = [_flow_size(rows)[1] for rows in flows if rows]
    inner_h = sum(heights) + GAP * (len(heights) - 1) if heights else 0
    h = PAD + 26 + inner_h + PAD + 2

    def draw(svg, parent, x, y, row_h):
        g = svg.group(parent, "group g-" + cls)
        if socket is not None:
            g.set("data-socket", str(socket))
        svg.rect(g, x, y, width, max(h, row_h), cls, rx=10)
        svg.text(g, x + PAD + 2, y + PAD + 14, title, "hsock")
        tx = x + PAD + 2 + _text_width(title, F_SOCKET, bold=True) + 10
        svg.text(g, tx, y + PAD + 14, summary, "sub")
        cy = y + PAD + 26
        for rows in flows:
            if rows:
                cy = _draw_flow(svg, g, rows, x + PAD, cy) + GAP

    return _Block(width, h, draw)


def _socket_summary(cells, entries_of):
    cpu_cells = [c for c in cells if c.cpus]
    mem_only = len(cells) - len(cpu_cells)
    cores = sum(len(c.siblings()) for c in cpu_cells)
    threads = sum(len(c.cpus) for c in cpu_cells)
    parts = [f"{len(cells)} cell" + ("s" if len(cells) != 1 else "")]
    if mem_only:
        parts[0] += f" ({mem_only} memory only)"
    if threads:
        parts.append(f"{cores} cores · {threads} threads")
    parts.append(memory_label(sum(c.memory_kb for c in cells)))
    n_dev = sum(len(entries_of.get(c.id, [])) for c in cells)
    if n_dev:
        parts.append(f"{n_dev} device" + ("s" if n_dev != 1 else ""))
    return " · ".join(parts)


def _summary(topology, devices):
    cells = topology.cells
    mem_only = sum(1 for c in cells if c.memory_only)
    cores = sum(len(c.siblings()) for c in cells if c.cpus)
    sockets = len(topology.sockets)
    parts = [
        f"{sockets} socket" + ("s" if sockets != 1 else ""),
        f"{len(cells)} NUMA cell"
        + ("s" if len(cells) != 1 else "")
        + (f" ({mem_only} memory only)" if mem_only else ""),
        f"{cores} cores",
        f"{len(topology.cpu_ids)} CPUs",
        memory_label(sum(c.memory_kb for c in cells)),
    ]
    if devices is not None:
        vfs = sum(1 for d in devices.pci if d.dev_type == TYPE_VF)
        text = f"{len(devices.pci)} PCI devices"
        if vfs:
            text += f" ({vfs} VFs)"
        if devices.mdevs:
            n = len(devices.mdevs)
            text += f", {n} mdev" + ("s" if n != 1 else "")
        parts.append(text)
    return " · ".join(parts)


# --- legend and distance matrix --------------------------------------------


def _legend(topology, devices, max_width):
    items = []

    def item(label, draw_swatch, swatch_w=18):
        w = swatch_w + 8 + _text_width(label, F_BODY)

        def draw(svg, parent, x, y, _h):
            draw_swatch(svg, parent, x, y)
            svg.text(parent, x + swatch_w + 6, y + 13, label, "body")

        items.append(_Block(w, 18, draw))

    def box(cls, **kw):
        return lambda svg, p, x, y: svg.rect(p, x, y + 2, 18, 13, cls, **kw)

    item("CPU cell", box("cell", rx=3))
    if any(c.memory_only for c in topology.cells):
        item("memory-only cell", box("memcell", rx=3))
    item("core (its thread ids)", box("core", rx=2))
    sizes = {}
    for cell in topology.cells:
        for pool in cell.pages:
            sizes.setdefault(pool.size_kb, _pool_color(cell, pool))
    for size, color in sorted(sizes.items(), key=lambda kv: -kv[0]):
        pages = "base pages" if color == COLORS["base"] else "hugepages"
        item(f"{page_label(size)} {pages}", box(None, fill=color))
    kinds = {}
    for entries in _device_entries(devices).values():
        for e in entries:
            kinds.setdefault(e.kind[0], e.kind[1])
    for label, color in sorted(kinds.items()):
        item(
            {
                "GPU": "GPU / display",
                "NIC": "network",
                "NVMe": "NVMe",
                "STOR": "storage",
                "ACC": "accelerator",
                "MDEV": "mdev, parent not listed",
            }.get(label, "other PCI"),
            lambda svg, p, x, y, lb=label, c=color: (
                svg.rect(p, x, y + 2, 34, 13, rx=3, fill=c),
                svg.text(p, x + 17, y + 12, lb, "kind", anchor="middle"),
            ),
            34,
        )
    return _flow_rows_left(items, max_width, 18)


def _flow_rows_left(items, max_width, gap):
    """Greedy left-to-right rows (legend items differ in width)."""
    rows, row, used = [], [], 0
    for it in items:
        if row and used + gap + it.w > max_width:
            rows.append(row)
            row, used = [], 0
        used += (gap if row else 0) + it.w
        row.append(it)
    if row:
        rows.append(row)
    return rows


def _distance_block(topology):
    cells = [c for c in topology.cells if c.distances]
    if len(cells) < 2:
        return None
    ids = [c.id for c in topology.cells]
    size = 26 if len(ids) <= 16 else 22
    label_w = _text_width(str(max(ids)), 10, mono=True) + 36
    #: colour by rank among the distinct remote distances: 12 vs 21 and
    #: 40 vs 80 vs 120 both come out as clearly different steps
    ranks = sorted({d for c in cells for o, d in c.distances if o != c.id})
    w = label_w + size * len(ids)
    h = 26 + 18 + size * len(ids)

    def shade(d):
        if d <= 10 or d not in ranks:
            return "#ecfdf5", COLORS["ink"]
        f = 1.0 if len(ranks) == 1 else ranks.index(d) / (len(ranks) - 1)
        f = 0.1 + 0.9 * f
        light, dark = (191, 219, 254), (30, 58, 138)
        rgb = [round(a + (b - a) * f) for a, b in zip(light, dark, strict=1)]
        ink = "#ffffff" if f > 0.45 else COLORS["ink"]
        return "#%02x%02x%02x" % tuple(rgb), ink

    def draw(svg, parent, x, y, _h):
        g = svg.group(parent, "distances")
        svg.text(g, x, y + 16, "NUMA distances", "hsock")
        svg.text(
            g,
            x + _text_width("NUMA distances", F_SOCKET, bold=True) + 10,
            y + 16,
            "row: from cell, column: to cell",
            "sub",
        )
        y0 = y + 26 + 18
        x0 = x + label_w
        for j, cid in enumerate(ids):
            svg.text(
                g,
                x0 + j * size + size / 2,
                y0 - 5,
                str(cid),
                "dist muted",
                anchor="middle",
            )
        for i, cell in enumerate(topology.cells):
            cy = y0 + i * size
            svg.text(
                g,
                x0 - 6,
                cy + size / 2 + 3,
                f"cell {cell.id}",
                "dist muted",
                anchor="end",
            )
            dist = dict(cell.distances)
            for j, cid in enumerate(ids):
                d = dist.get(cid)
                cx = x0 + j * size
                fill, ink = ("#ffffff", COLORS["ink"])
                if d is not None:
                    fill, ink = shade(d)
                svg.rect(
                    g,
                    cx,
                    cy,
                    size,
                    size,
                    fill=fill,
                    stroke="#ffffff",
                    stroke_width=1,
                )
                svg.text(
                    g,
                    cx + size / 2,
                    cy + size / 2 + 3,
                    "–" if d is None else str(d),
                    "dist",
                    anchor="middle",
                    style=f"fill: {ink}",
                )

    return _Block(w, h, draw)


# --- the picture -----------------------------------------------------------


def render_svg(topology, devices=None, title=None):
    """SVG text picturing ``topology`` (a HostTopology) and, if given,
    ``devices`` (HostDevices) on the cells they hang off."""
    entries_of = _device_entries(devices)
    known = {c.id for c in topology.cells}
    no_affinity = []
    for node, entries in sorted(
        entries_of.items(), key=lambda kv: -1 if kv[0] is None else kv[0]
    ):
        if node is None or node not in known:
            for e in entries:
                if node is not None:
                    e.lines.append(
                        (f"NUMA node {node}: not a host cell", True)
                    )
            no_affinity.extend(entries)

    cpu_cells = [c for c in topology.cells if c.cpus]
    mem_cells = [c for c in topology.cells if not c.cpus]
    need = {
        c.id: _cell_needs(topology, c, entries_of.get(c.id, []))
        for c in topology.cells
    }
    cpu_w = max((need[c.id] for c in cpu_cells), default=0)
    mem_w = max((need[c.id] for c in mem_cells), default=0)
    blocks = {
        c.id: _cell_block(
            topology,
            c,
            entries_of.get(c.id, []),
            cpu_w if c.cpus else mem_w,
        )
        for c in topology.cells
    }

    groups = []
    for socket in topology.sockets:
        cells = [c for c in topology.cells if c.socket == socket]
        if cells:
            groups.append((socket, cells, "socket"))
    unknown = [c for c in topology.cells if c.socket is None]
    if unknown:
        groups.append((None, unknown, "unknown"))

    # Widest socket row: as many cells as fit in TARGET_WIDTH, and never
    # narrower than the widest single cell or the title.
    widest_cell = max(b.w for b in blocks.values())
    one_row = max(
        sum(blocks[c.id].w + GAP for c in cells if bool(c.cpus) == kind) - GAP
        for _, cells, _ in groups
        for kind in (True, False)
    )
    summary = _summary(topology, devices)
    heading = title or "Host NUMA topology"
    inner = max(
        widest_cell,
        min(TARGET_WIDTH, one_row),
        _text_width(summary, F_SUB) - 2 * PAD,
        _text_width(heading, F_TITLE, bold=True) - 2 * PAD,
    )

    group_blocks = []
    for socket, cells, cls in groups:
        name = "unknown socket" if socket is None else f"socket {socket}"
        flows = [
            _flow([blocks[c.id] for c in cells if c.cpus], inner),
            _flow([blocks[c.id] for c in cells if not c.cpus], inner),
        ]
        text = _socket_summary(cells, entries_of)
        used = max(
            max(_flow_size(rows)[0] for rows in flows),
            _text_width(name, F_SOCKET, bold=True)
            + 12
            + _text_width(text, F_SUB),
        )
        group_blocks.append((socket, name, text, flows, cls, used))
    inner = max(
        [g[-1] for g in group_blocks]
        + [
            _text_width(summary, F_SUB) - 2 * PAD,
            _text_width(heading, F_TITLE, bold=True) - 2 * PAD,
        ]
    )
    outer = inner + 2 * PAD
    sections = [
        _group_block(name, text, flows, cls, outer, socket)
        for socket, name, text, flows, cls, _ in group_blocks
    ]
    if no_affinity:
        strip = [
            _Block(e.width(), e.height(), _entry_drawer(e))
            for e in no_affinity
        ]
        sections.append(
            _group_block(
                "no NUMA affinity",
                f"{len(no_affinity)} device(s) with no NUMA node the host has",
                [_flow(strip, inner, gap=24)],
                "unknown",
                outer,
            )
        )
    # Narrow sockets (one small cell each) sit side by side.
    section_rows = _flow(sections, max(TARGET_WIDTH, outer))
    body_w, body_h = _flow_size(section_rows)
    dist = _distance_block(topology)
    body_w = max(body_w, dist.w if dist else 0)
    legend_rows = _legend(topology, devices, body_w)
    width = body_w + 2 * MARGIN
    y = MARGIN
    height = (
        MARGIN
        + 30
        + 22
        + _flow_size(legend_rows, 8)[1]
        + 16
        + body_h
        + GAP
        + (dist.h + GAP if dist else 0)
        + MARGIN
    )

    root = etree.Element(
        f"{{{SVG_NS}}}svg",
        nsmap={None: SVG_NS},
        width=str(width),
        height=str(height),
        viewBox=f"0 0 {width} {height}",
    )
    svg = _Svg(root)
    svg.el(root, "title").text = f"{heading}: {summary}"
    svg.el(root, "style").text = STYLE
    svg.rect(root, 0, 0, width, height, fill=COLORS["bg"])
    svg.text(root, MARGIN, y + 22, heading, "title")
    y += 30
    svg.text(root, MARGIN, y + 14, summary, "sub")
    y += 22
    legend = svg.group(root, "legend")
    y = _draw_left_rows(svg, legend, legend_rows, MARGIN, y, 18, 8) + 16
    y = _draw_flow(svg, root, section_rows, MARGIN, y) + GAP
    if dist:
        dist.draw(svg, root, MARGIN, y, dist.h)
    return etree.tostring(root, encoding="unicode", pretty_print=True)


def _entry_drawer(entry):
    def draw(svg, parent, x, y, _h):
        entry.draw(svg, parent, x, y)

    return draw


def _draw_left_rows(svg, parent, rows, x, y, gap, row_gap):
    for row in rows:
        h = max(b.h for b in row)
        cx = x
        for b in row:
            b.draw(svg, parent, cx, y, h)
            cx += b.w + gap
        y += h + row_gap
    return y - row_gap if rows else y
