"""libvirt capabilities XML -> :class:`HostTopology`.

Real hosts are awkward, and libvirt's own test files show how: CPUs with no
topology attributes at all, cells with no ``<memory>``, memory-only cells,
HMAT interconnects, CPUs whose sockets each hold one thread.  The rules:

* a CPU without ``socket_id``/``core_id``/``siblings`` keeps ``None`` for
  what is missing and is its own only sibling;
* a cell without ``<memory>`` has 0 KiB and no pools (libvirt omits it
  when the kernel does not say);
* a CPU id that appears twice (in one cell or across cells), a cell id
  that appears twice, a missing or non-integer ``id``, and a size unit
  libvirt would not write are errors (:class:`HostError`) that name the
  element, because placing guests on a host we misread is worse than
  refusing to start.
"""

from lxml import etree

from nova_slices.errors import HostError
from nova_slices.host.topology import Cell, Cpu, HostTopology, PagePool

#: libvirt's scaled-integer units, in KiB
_UNITS_KB = {
    "b": 1 / 1024,
    "bytes": 1 / 1024,
    "kb": 1000 / 1024,
    "k": 1,
    "kib": 1,
    "mb": 1000**2 / 1024,
    "m": 1024,
    "mib": 1024,
    "gb": 1000**3 / 1024,
    "g": 1024**2,
    "gib": 1024**2,
    "tb": 1000**4 / 1024,
    "t": 1024**3,
    "tib": 1024**3,
}


def _fail(message, code="host.invalid-capabilities", value=None):
    return HostError(message, code=code, key="capabilities", value=value)


def to_kib(value, unit, where):
    factor = _UNITS_KB.get((unit or "KiB").lower())
    if factor is None:
        raise _fail(
            f"{where}: unknown unit {unit!r}; libvirt writes one of "
            "b, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)",
            code="host.unknown-unit",
            value=unit,
        )
    return int(_int(value, where) * factor)


def kib_or_none(value, unit):
    """``to_kib`` for checks that report a bad size themselves: None."""
    try:
        return to_kib(value, unit, "")
    except HostError:
        return None


def _int(text, where):
    try:
        return int(text)
    except (TypeError, ValueError):
        raise _fail(
            f"{where}: expected an integer, found {text!r}", value=text
        ) from None


def _opt_int(el, attr, where):
    text = el.get(attr)
    return None if text is None else _int(text, f"{where} {attr}")


def _siblings(text, cpu_id, where):
    if not text:
        return frozenset({cpu_id})
    from nova_slices.cpuset import parse_cpuset

    try:
        return frozenset(parse_cpuset(text))
    except ValueError as exc:
        raise _fail(f"{where} siblings={text!r}: {exc}", value=text) from None


def parse_capabilities(xml):
    """Parse capabilities XML text (or bytes) into a HostTopology."""
    if isinstance(xml, str):
        xml = xml.encode()
    try:
        root = etree.fromstring(
            xml, etree.XMLParser(resolve_entities=False, no_network=True)
        )
    except etree.XMLSyntaxError as exc:
        raise _fail(
            f"capabilities XML is not well-formed: {exc.msg} (line "
            f"{exc.lineno})",
            code="host.malformed-capabilities",
        ) from None
    if root.tag != "capabilities":
        raise _fail(
            f"expected a <capabilities> document, found <{root.tag}>",
            code="host.malformed-capabilities",
        )
    cells_el = root.find("host/topology/cells")
    if cells_el is None:
        raise _fail(
            "capabilities have no <host><topology><cells>: libvirt reports "
            "no NUMA topology for this host (libvirt's test driver never "
            "does: configure [libvirt] capabilities_file)",
            code="host.no-topology",
        )
    seen_cpus = {}
    raw = []
    for cell_el in cells_el.iterfind("cell"):
        raw.append(_parse_cell(cell_el, seen_cpus))
    ids = [c.id for c in raw]
    duplicate = sorted({i for i in ids if ids.count(i) > 1})
    if duplicate:
        raise _fail(
            f"cell id(s) {duplicate} appear more than once", value=duplicate[0]
        )
    if not raw:
        raise _fail("capabilities list no NUMA cell", code="host.no-topology")
    return HostTopology(tuple(_with_sockets(sorted(raw, key=lambda c: c.id))))


def _parse_cell(cell_el, seen_cpus):
    if cell_el.get("id") is None:
        raise _fail("<cell> without an id attribute")
    cell_id = _int(cell_el.get("id"), "<cell id>")
    where = f"<cell id='{cell_id}'>"
    mem_el = cell_el.find("memory")
    memory_kb = (
        0
        if mem_el is None
        else to_kib(mem_el.text, mem_el.get("unit"), f"{where} <memory>")
    )
    pages = []
    for p in cell_el.iterfind("pages"):
        size = to_kib(p.get("size"), p.get("unit"), f"{where} <pages size>")
        pages.append(PagePool(size, _int(p.text, f"{where} <pages>")))
    distances = tuple(
        sorted(
            (
                _int(s.get("id"), f"{where} <sibling id>"),
                _int(s.get("value"), f"{where} <sibling value>"),
            )
            for s in cell_el.iterfind("distances/sibling")
        )
    )
    cpus = []
    for c in cell_el.iterfind("cpus/cpu"):
        if c.get("id") is None:
            raise _fail(f"{where}: <cpu> without an id attribute")
        cpu_id = _int(c.get("id"), f"{where} <cpu id>")
        cw = f"{where} <cpu id='{cpu_id}'>"
        if cpu_id in seen_cpus:
            raise _fail(
                f"{cw}: CPU {cpu_id} is already listed in cell "
                f"{seen_cpus[cpu_id]}; every CPU id must appear once",
                code="host.duplicate-cpu",
                value=cpu_id,
            )
        seen_cpus[cpu_id] = cell_id
        cpus.append(
            Cpu(
                cpu_id,
                socket=_opt_int(c, "socket_id", cw),
                die=_opt_int(c, "die_id", cw),
                cluster=_opt_int(c, "cluster_id", cw),
                core=_opt_int(c, "core_id", cw),
                siblings=_siblings(c.get("siblings"), cpu_id, cw),
            )
        )
    cpus.sort(key=lambda c: c.id)
    _check_siblings(cpus, where)
    pages.sort(key=lambda p: p.size_kb)
    return Cell(cell_id, tuple(cpus), memory_kb, tuple(pages), distances)


def _check_siblings(cpus, where):
    """Thread siblings are CPUs of the same cell that list each other."""
    by_id = {c.id: c for c in cpus}
    for cpu in cpus:
        outside = sorted(cpu.siblings - set(by_id))
        if outside:
            raise _fail(
                f"{where} <cpu id='{cpu.id}'> lists sibling(s) {outside} "
                "that are not CPUs of this cell",
                code="host.invalid-siblings",
                value=cpu.id,
            )
        if cpu.id not in cpu.siblings or any(
            by_id[s].siblings != cpu.siblings for s in cpu.siblings
        ):
            raise _fail(
                f"{where} <cpu id='{cpu.id}'> siblings "
                f"{sorted(cpu.siblings)} do not agree with its siblings' "
                "own lists; thread siblings must list each other",
                code="host.invalid-siblings",
                value=cpu.id,
            )


def _with_sockets(cells):
    """Give each cell its socket; memory-only cells take their nearest's."""

    def own_socket(cell):
        sockets = cell.sockets
        if len(sockets) == 1:
            return next(iter(sockets))  # may itself be None (unknown)
        return None  # spans sockets

    sockets = {c.id: own_socket(c) for c in cells if c.cpus}
    rows = {c.id: dict(c.distances) for c in cells}

    def distance(a, b):
        # either row will do: some hosts list distances only on CPU cells
        return rows[a].get(b, rows[b].get(a))

    out = []
    for cell in cells:
        if cell.cpus:
            socket = sockets[cell.id]
        else:
            near = sorted(
                (distance(cell.id, other), other)
                for other in sockets
                if distance(cell.id, other) is not None
            )
            socket = sockets[near[0][1]] if near else None
        out.append(
            Cell(
                cell.id,
                cell.cpus,
                cell.memory_kb,
                cell.pages,
                cell.distances,
                socket,
            )
        )
    return out
