"""Building blocks of the layout: the element factory and row flows.

:class:`_Svg` creates elements in the SVG namespace (the serializer
escapes every label); a :class:`_Block` is something measured that draws
itself where it is placed, and the flow helpers arrange blocks in rows.
None of this knows about cells, sockets or devices.
"""

import math

from lxml import etree

from nova_slices.host.svg.style import GAP, SVG_NS


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


def _draw_left_rows(svg, parent, rows, x, y, gap, row_gap):
    for row in rows:
        h = max(b.h for b in row)
        cx = x
        for b in row:
            b.draw(svg, parent, cx, y, h)
            cx += b.w + gap
        y += h + row_gap
    return y - row_gap if rows else y
