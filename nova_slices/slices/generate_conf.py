"""The configuration a generated slice host keeps of the input one (pure).

``generate-slices`` writes a ``nova-slices.conf`` complete for the host,
so what the input configuration says beyond slices is carried over: every
option as written (the last value of a single-valued option, every value
of a multi-valued one), in its group, with these exceptions:

* ``[libvirt]``: the host selection is written as it resolved
  (``connection_uri``, else ``host_bundle`` by shipped name or absolute
  path; ``capabilities_file`` absolute), and the slices are the
  generator's: the old ``slice_spec`` and ``slice_template_dir`` go.
* ``[compute] cpu_dedicated_set`` / ``cpu_shared_set`` go: a slice host
  runs no dynamic guest, and start-up refuses them beside slices.
* A slice's GPUs must not also reach guests another way.  A ``[pci]
  device_spec`` value that allows a slice GPU goes (and refuses when it
  also allows devices that are not slice GPUs: narrowing it is the
  operator's call); an ``alias`` left matching only slice GPUs goes.
* ``[devices]`` and the ``[mdev_<type>]`` groups are written as they
  resolve on this host, parents listed explicitly (legacy names
  included), without the slice GPUs; a type left without a parent goes.

Every change is said in a note that the generated file and the command's
output carry.
"""

import dataclasses
import os

from nova_slices import data
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.fit.pci import PciRequest, parse_aliases
from nova_slices.slices.generate import refuse

#: (section, key) written from the resolved values, not as read
_REPLACED = {
    ("libvirt", "connection_uri"),
    ("libvirt", "host_bundle"),
    ("libvirt", "capabilities_file"),
    ("libvirt", "slice_spec"),
    ("libvirt", "slice_template_dir"),
    ("pci", "device_spec"),
    ("pci", "alias"),
    ("devices", "enabled_mdev_types"),
    ("devices", "enabled_vgpu_types"),
}
#: dropped with a note: start-up refuses them on a host with slices
_MIXED = (("compute", "cpu_dedicated_set"), ("compute", "cpu_shared_set"))
_MDEV_GROUPS = ("mdev_", "vgpu_")


@dataclasses.dataclass(frozen=True)
class Carried:
    #: ((section, ((key, value), ...)), ...), DEFAULT and libvirt first
    sections: tuple
    notes: tuple
    #: the files read
    sources: tuple


def section_name(name):
    """oslo.config's group names: DEFAULT as is, any other lower case."""
    return name if name == "DEFAULT" else name.lower()


def host_selection(libvirt):
    """``[libvirt]`` lines that select the host ``libvirt`` (the input
    configuration's group) resolved to: a generated file must run on the
    same machine from any directory."""
    lines = []
    if libvirt.connection_uri:
        lines.append(("connection_uri", libvirt.connection_uri))
    else:
        bundle = os.path.realpath(data.resolve_bundle(libvirt.host_bundle))
        shipped = os.path.dirname(bundle) == os.path.realpath(data.hosts_dir())
        lines.append(
            ("host_bundle", os.path.basename(bundle) if shipped else bundle)
        )
    if libvirt.capabilities_file:
        lines.append(
            ("capabilities_file", os.path.abspath(libvirt.capabilities_file))
        )
    return lines


def _read(raw, multi):
    """{section: {key: [values]}} as oslo.config would read them."""
    out = {}
    for _path, section, key, value in raw:
        keys = out.setdefault(section_name(section), {})
        if (section_name(section), key) in multi:
            keys.setdefault(key, []).append(value)
        else:
            keys.pop(key, None)  # the last one wins, and its place
            keys[key] = [value]
    return out


def _device_specs(values, devices, gpus, notes):
    """``[pci] device_spec`` values without those allowing a slice GPU."""
    kept = list(values)
    while True:
        decided = {
            device.address: spec.raw
            for device, spec in assignable(parse_device_specs(kept), devices)
        }
        hit = next((a for a in decided if a in gpus), None)
        if hit is None:
            return kept
        raw = decided[hit]
        others = sorted(
            a for a, r in decided.items() if r == raw and a not in gpus
        )
        if others:
            raise refuse(
                f"[pci] device_spec = {raw} allows slice GPU {hit} and "
                f"also {', '.join(others[:4])}"
                f"{' ...' if len(others) > 4 else ''}, which are not slice "
                "GPUs: a slice's GPU must reach guests through its slice "
                "only. Narrow the spec (product_id, address) in the input "
                "configuration, or choose the GPUs with --gpu",
                "device-spec-overlaps",
                "[pci] device_spec",
                raw,
            )
        kept = [v for v in kept if v != raw]
        shown = sorted(a for a, r in decided.items() if r == raw)
        notes.append(
            f"[pci] device_spec = {raw} left out: it allowed "
            f"{', '.join(shown)}, now slice GPU(s)"
        )


def _aliases(values, devices, kept_specs, gpus, notes):
    """``[pci] alias`` values without those only slice GPUs match."""
    allowed = [
        d for d, _ in assignable(parse_device_specs(kept_specs), devices)
    ]
    slice_gpus = [d for d in devices.pci if d.address in gpus]
    out = []
    for raw in values:
        (spec,) = parse_aliases([raw]).values()
        request = PciRequest(spec.name, 1, spec, spec.numa_policy or "legacy")
        if not any(map(request.matches, allowed)) and any(
            map(request.matches, slice_gpus)
        ):
            notes.append(
                f"[pci] alias = {raw} left out: only slice GPUs match it"
            )
            continue
        out.append(raw)
    return out


def _mdev_sections(mdev_types, gpus, notes):
    """``[devices]`` and ``[mdev_<type>]`` lines, slice GPUs removed."""
    kept = []
    for t in mdev_types:
        parents = [p for p in t.parents if p not in gpus]
        taken = sorted(set(t.parents) - set(parents))
        if taken and parents:
            notes.append(
                f"[mdev_{t.type}] no longer offers {', '.join(taken)}: "
                "slice GPU(s)"
            )
        elif taken:
            notes.append(
                f"mdev type {t.type} left out of [devices] "
                f"enabled_mdev_types: its device(s) {', '.join(taken)} are "
                "slice GPUs"
            )
            continue
        kept.append((t, parents))
    if not kept:
        return []
    sections = [
        (
            "devices",
            [("enabled_mdev_types", ", ".join(t.type for t, _ in kept))],
        )
    ]
    for t, parents in kept:
        lines = [
            ("device_addresses", ",".join(parents)),
            ("mdev_class", t.resource_class),
        ]
        if t.max_instances is not None:
            lines.append(("max_instances", str(t.max_instances)))
        sections.append((f"mdev_{t.type}", lines))
    return sections


def carry(
    raw,
    multi,
    selection,
    device_specs,
    aliases,
    mdev_types,
    devices,
    gpus,
):
    """The :class:`Carried` configuration.

    ``raw``: (file, section, key, value) as written, in the order read;
    ``multi``: the (section, key) of multi-valued options; ``selection``:
    :func:`host_selection`'s lines; ``device_specs``/``aliases``: the
    ``[pci]`` values; ``mdev_types``: the resolved MdevTypeConfigs;
    ``gpus``: the slice GPUs' addresses.
    """
    notes = []
    gpus = frozenset(gpus)
    read = _read(raw, multi)
    for section, key in _MIXED:
        if key in read.get(section, {}):
            notes.append(
                f"[{section}] {key} = {read[section][key][-1]} left out: a "
                "host with slices runs no dynamic guest (CPUs kept for the "
                "host are --reserved-cores / --reserved-cpus)"
            )
    specs = _device_specs(device_specs, devices, gpus, notes)
    sections = {"DEFAULT": [], "libvirt": list(selection)}
    for section, keys in read.items():
        if section.startswith(_MDEV_GROUPS):
            continue
        lines = sections.setdefault(section, [])
        for key, values in keys.items():
            if (section, key) in _REPLACED or (section, key) in _MIXED:
                continue
            lines.extend((key, v) for v in values)
    pci = [("device_spec", v) for v in specs] + [
        ("alias", v) for v in _aliases(aliases, devices, specs, gpus, notes)
    ]
    if pci:
        sections.setdefault("pci", []).extend(pci)
    for section, lines in _mdev_sections(mdev_types, gpus, notes):
        sections.setdefault(section, []).extend(lines)
    return Carried(
        tuple((s, tuple(lines)) for s, lines in sections.items() if lines),
        tuple(notes),
        tuple(dict.fromkeys(path for path, *_ in raw)),
    )
