"""The whole picture: socket groups, legend, distance matrix, page.

:func:`render_svg` places the cell boxes in one group per socket (plus
"unknown socket" and "no NUMA affinity" groups), sizes the page to the
widest of them, the title and the legend, and serializes the tree.
"""

from lxml import etree

from nova_slices.host.devices import TYPE_VF
from nova_slices.host.svg.cells import cell_block, cell_needs
from nova_slices.host.svg.devices import device_entries, entry_drawer
from nova_slices.host.svg.layout import (
    _Block,
    _draw_flow,
    _draw_left_rows,
    _flow,
    _flow_rows_left,
    _flow_size,
    _Svg,
)
from nova_slices.host.svg.style import (
    COLORS,
    F_BODY,
    F_SOCKET,
    F_SUB,
    F_TITLE,
    GAP,
    MARGIN,
    PAD,
    STYLE,
    SVG_NS,
    TARGET_WIDTH,
    _pool_color,
    _text_width,
    memory_label,
    page_label,
)

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
    for entries in device_entries(devices).values():
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
    entries_of = device_entries(devices)
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
        c.id: cell_needs(topology, c, entries_of.get(c.id, []))
        for c in topology.cells
    }
    cpu_w = max((need[c.id] for c in cpu_cells), default=0)
    mem_w = max((need[c.id] for c in mem_cells), default=0)
    blocks = {
        c.id: cell_block(
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
            _Block(e.width(), e.height(), entry_drawer(e)) for e in no_affinity
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
