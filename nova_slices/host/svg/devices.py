"""PCI devices and mdevs as drawn entries under the cell they hang off.

Turns a HostDevices into :class:`_DeviceEntry` objects grouped by NUMA
node: a PF with its VFs folded into one line, VFs whose PF libvirt did
not list, mdev types with their free instances, mdevs with no listed
parent.
"""

from nova_slices.host.devices import TYPE_PF, TYPE_VF
from nova_slices.host.svg.style import (
    F_BODY,
    KIND_MDEV,
    LINE,
    _clip,
    _kind,
    _text_width,
)


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


def device_entries(devices):
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


def entries_height(entries):
    if not entries:
        return 0
    return 8 + sum(e.height() for e in entries) + 4 * (len(entries) - 1)


def draw_entries(svg, parent, entries, x, y, w):
    if not entries:
        return
    svg.el(parent, "line", x1=x, y1=y + 2, x2=x + w, y2=y + 2, class_="rule")
    y += 8
    for e in entries:
        e.draw(svg, parent, x, y)
        y += e.height() + 4


def entry_drawer(entry):
    def draw(svg, parent, x, y, _h):
        entry.draw(svg, parent, x, y)

    return draw
