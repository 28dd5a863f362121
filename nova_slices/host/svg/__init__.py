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
  than :data:`~.style.COMPACT_CORES` cores switches to a dense grid plus CPU
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

The package is split by concern: :mod:`.style` (sizes, colours, CSS,
text measuring, labels), :mod:`.layout` (element factory, blocks and row
flows), :mod:`.devices` (device entries), :mod:`.cells` (cell boxes) and
:mod:`.picture` (socket groups, legend, distance matrix, the page).
"""

from nova_slices.host.svg.picture import render_svg
from nova_slices.host.svg.style import memory_label, page_label

__all__ = ["memory_label", "page_label", "render_svg"]
