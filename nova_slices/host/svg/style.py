"""Look of the picture: sizes, colours, CSS, text measuring, labels.

Every other module of the package draws with these numbers and asks
:func:`_text_width` how wide a label is, so the look can change here
without touching the layout or drawing code.  Sizes come from a
text-width estimate for DejaVu Sans / DejaVu Sans Mono (what
``rsvg-convert`` uses on Debian), rounded up so labels fit.
"""

import math

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
