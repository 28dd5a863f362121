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
  refusing to start;
* so are values no kernel reports: negative memory, ids or distances, a
  page size of 0 or below, a negative page count, a page size listed
  twice in one cell.  ``-1`` for ``socket_id``/``die_id``/``cluster_id``/
  ``core_id`` is the kernel's "unknown" (some Arm hosts) and reads as
  ``None``;
* the document is bounded before any of it is read: its size, then the
  number of ``<cell>``, ``<cpu>`` and ``<pages>`` elements, each against
  a named limit, so a hostile or corrupt file fails in milliseconds
  instead of taking minutes (100,000 CPUs did).  Errors name the source
  (the file, or libvirt) in ``key`` and in the message.
"""

import collections

from nova_slices import xmlinput
from nova_slices.cpuset import MAX_CPU_ID, parse_cpuset
from nova_slices.errors import HostError
from nova_slices.host.topology import Cell, Cpu, HostTopology, PagePool

#: a capabilities document larger than this is refused unread; a real
#: 8,192-CPU host with caches and guest sections is about 2 MiB
MAX_CAPABILITIES_BYTES = 16 * 1024 * 1024
#: Linux numbers NUMA nodes below MAX_NUMNODES (1 << NODES_SHIFT, at most
#: 1024 on x86-64)
MAX_CELL_ID = 1023
#: cells of one host: the largest machines today have 16-34; fitting a
#: guest costs guest cells x host CPUs, so this bounds ``fit`` to seconds
#: (a 256-cell guest on 256 cells of 16,384 CPUs took 10 s)
MAX_CELLS = 128
#: CPUs of one host: twice Linux's largest NR_CPUS (8192); ids may still
#: go up to MAX_CPU_ID.  Fitting is linear in CPUs times guest cells, so
#: this bounds ``fit`` too
MAX_CPUS = 16384
#: page pools per cell: Linux offers at most a handful of sizes
MAX_PAGE_POOLS = 16
#: CPUs in one thread-sibling group: SMT8 (POWER, SPARC) is the most any
#: processor has; 64 leaves room and bounds the sibling checks
MAX_THREADS_PER_CORE = 64

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
    # ``key`` and the message's prefix are the source, added once in
    # parse_capabilities
    return HostError(message, code=code, key="capabilities", value=value)


def _out_of_range(where, value, valid):
    return _fail(
        f"{where}: {value} is out of range; {valid}",
        code="host.value-out-of-range",
        value=value,
    )


def to_kib(value, unit, where):
    """A non-negative libvirt scaled integer in KiB."""
    factor = _UNITS_KB.get((unit or "KiB").lower())
    if factor is None:
        raise _fail(
            f"{where}: unknown unit {unit!r}; libvirt writes one of "
            "b, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)",
            code="host.unknown-unit",
            value=unit,
        )
    number = _int(value, where)
    if number < 0:
        raise _out_of_range(where, number, "a size is 0 or more")
    return int(number * factor)


def kib_or_none(value, unit):
    """``to_kib`` for checks that report a bad size themselves: None
    (also for a negative size)."""
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


def _bounded(text, where, low, high, valid):
    number = _int(text, where)
    if not low <= number <= high:
        raise _out_of_range(where, number, valid)
    return number


def _topology_id(el, attr, where):
    """socket_id and friends: None when absent or -1 (unknown)."""
    text = el.get(attr)
    if text is None:
        return None
    number = _int(text, f"{where} {attr}")
    if number < -1:
        raise _out_of_range(
            f"{where} {attr}", number, "ids are 0 or more (-1: unknown)"
        )
    return None if number == -1 else number


def _siblings(text, cpu_id, where, cache):
    """A CPU's thread siblings; equal texts share one frozenset."""
    if not text:
        return frozenset({cpu_id})
    if text not in cache:
        try:
            cache[text] = frozenset(
                parse_cpuset(text, max_size=MAX_THREADS_PER_CORE)
            )
        except ValueError as exc:
            raise _fail(
                f"{where} siblings={text[:60]!r}: {exc}", value=text[:60]
            ) from None
    return cache[text]


def parse_capabilities(xml, source="capabilities XML"):
    """Parse capabilities XML text (or bytes) into a HostTopology.

    ``source`` names where the document came from (a file, an option,
    libvirt) in every error's ``key`` and message.
    """
    try:
        return _parse(xml)
    except HostError as exc:
        exc.key = source
        exc.message = f"{source}: {exc.message}"
        exc.args = (exc.message,)
        raise


_PARSE_CODES = {
    xmlinput.TOO_LARGE: "host.capabilities-too-large",
    xmlinput.MALFORMED: "host.malformed-capabilities",
    xmlinput.DOCTYPE: "host.capabilities-doctype",
}


def _parse(xml):
    try:
        root = xmlinput.parse(xml, MAX_CAPABILITIES_BYTES)
    except xmlinput.UnsafeXml as exc:
        raise _fail(
            f"capabilities XML {exc}",
            code=_PARSE_CODES[exc.reason],
            value=exc.lineno,
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
    _check_counts(cells_el)
    seen_cpus, cache = {}, {}
    raw = []
    for cell_el in cells_el.iterfind("cell"):
        raw.append(_parse_cell(cell_el, seen_cpus, cache))
    counts = collections.Counter(c.id for c in raw)
    duplicate = sorted(i for i, n in counts.items() if n > 1)
    if duplicate:
        raise _fail(
            f"cell id(s) {duplicate} appear more than once", value=duplicate[0]
        )
    if not raw:
        raise _fail("capabilities list no NUMA cell", code="host.no-topology")
    return HostTopology(tuple(_with_sockets(sorted(raw, key=lambda c: c.id))))


def _check_counts(cells_el):
    """Refuse more cells, CPUs or page pools than any host has, counted
    by libxml2 before a Python object is made for any of them."""
    limits = (
        ("cell", MAX_CELLS, "NUMA cells"),
        ("cell/cpus/cpu", MAX_CPUS, "CPUs"),
    )
    for path, limit, what in limits:
        count = int(cells_el.xpath(f"count({path})"))
        if count > limit:
            raise _fail(
                f"lists {count} <{path.rpartition('/')[2]}> elements; at "
                f"most {limit} {what} are accepted",
                code="host.capabilities-too-many",
                value=count,
            )
    most = int(
        max(
            (c.xpath("count(pages)") for c in cells_el.iterfind("cell")),
            default=0,
        )
    )
    if most > MAX_PAGE_POOLS:
        raise _fail(
            f"a <cell> lists {most} <pages> elements; at most "
            f"{MAX_PAGE_POOLS} page pools per cell are accepted",
            code="host.capabilities-too-many",
            value=most,
        )


def _parse_cell(cell_el, seen_cpus, cache):
    if cell_el.get("id") is None:
        raise _fail("<cell> without an id attribute")
    cell_id = _bounded(
        cell_el.get("id"),
        "<cell id>",
        0,
        MAX_CELL_ID,
        f"cell ids are 0 to {MAX_CELL_ID}",
    )
    where = f"<cell id='{cell_id}'>"
    mem_el = cell_el.find("memory")
    memory_kb = (
        0
        if mem_el is None
        else to_kib(mem_el.text, mem_el.get("unit"), f"{where} <memory>")
    )
    pages = {}
    for p in cell_el.iterfind("pages"):
        pw = f"{where} <pages size='{p.get('size')}'>"
        size = to_kib(p.get("size"), p.get("unit"), f"{pw} size")
        if size <= 0:
            raise _out_of_range(f"{pw} size", size, "a page is 1 KiB or more")
        if size in pages:
            raise _fail(
                f"{pw}: the {size} KiB pool is listed twice; each page size "
                "appears once per cell",
                code="host.duplicate-pages",
                value=size,
            )
        count = _bounded(p.text, f"{pw} count", 0, float("inf"), "0 or more")
        pages[size] = PagePool(size, count)
    distances = tuple(
        sorted(
            (
                _bounded(
                    s.get("id"),
                    f"{where} <sibling id>",
                    0,
                    MAX_CELL_ID,
                    f"cell ids are 0 to {MAX_CELL_ID}",
                ),
                _bounded(
                    s.get("value"),
                    f"{where} <sibling value>",
                    0,
                    float("inf"),
                    "a NUMA distance is 0 or more",
                ),
            )
            for s in cell_el.iterfind("distances/sibling")
        )
    )
    cpus = []
    for c in cell_el.iterfind("cpus/cpu"):
        if c.get("id") is None:
            raise _fail(f"{where}: <cpu> without an id attribute")
        cpu_id = _bounded(
            c.get("id"),
            f"{where} <cpu id>",
            0,
            MAX_CPU_ID,
            f"CPU ids are 0 to {MAX_CPU_ID}",
        )
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
                socket=_topology_id(c, "socket_id", cw),
                die=_topology_id(c, "die_id", cw),
                cluster=_topology_id(c, "cluster_id", cw),
                core=_topology_id(c, "core_id", cw),
                siblings=_siblings(c.get("siblings"), cpu_id, cw, cache),
            )
        )
    cpus.sort(key=lambda c: c.id)
    _check_siblings(cpus, where)
    pools = tuple(pages[size] for size in sorted(pages))
    return Cell(cell_id, tuple(cpus), memory_kb, pools, distances)


def _check_siblings(cpus, where):
    """Thread siblings are CPUs of the same cell that list each other.

    Checked per group in time linear in the CPUs: the CPUs that claim a
    sibling set must be exactly that set (which holds exactly when every
    CPU is in its own set and each of its siblings lists the same set).
    """
    ids = frozenset(c.id for c in cpus)
    claims = collections.defaultdict(list)
    for cpu in cpus:
        outside = sorted(cpu.siblings - ids)
        if outside:
            raise _fail(
                f"{where} <cpu id='{cpu.id}'> lists sibling(s) {outside} "
                "that are not CPUs of this cell",
                code="host.invalid-siblings",
                value=cpu.id,
            )
        claims[cpu.siblings].append(cpu.id)
    for siblings, claimers in claims.items():
        if frozenset(claimers) != siblings:
            cpu_id = min(set(claimers) ^ siblings)
            shown = cpu_id if cpu_id in claimers else claimers[0]
            raise _fail(
                f"{where} <cpu id='{shown}'> siblings "
                f"{sorted(siblings)} do not agree with its siblings' "
                "own lists; thread siblings must list each other",
                code="host.invalid-siblings",
                value=shown,
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
