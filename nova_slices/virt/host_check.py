"""Check a domain against the host it is about to run on.

libvirt's test driver accepts pins to CPUs that do not exist, and even a
real libvirtd only notices some mistakes at start time.  A slice template
is written once by hand for one machine; if it is copied to a different
machine, or the machine changes, we want the spawn to fail with a message
that names the element and the missing CPU, cell, page size or device
rather than start a guest pinned wrongly.
"""

from nova_slices.cpuset import CpusetTooLarge, parse_cpuset
from nova_slices.host.capabilities import kib_or_none


def check_domain(domain, topology, pci_addresses, mdev_uuids=None):
    """Return a list of problems (empty when the domain fits the host).

    ``mdev_uuids``, when given, are the mdevs the host has; every mdev
    ``<hostdev>`` must name one of them.
    """
    cpus = topology.cpu_ids
    cells = {c.id for c in topology.cells}
    pages = {p.size_kb for c in topology.cells for p in c.pages}
    problems = []

    def cpuset_problems(where, text):
        # bounded by the host's highest CPU, so a hostile 0-99999999999
        # is refused before it is expanded
        try:
            wanted = parse_cpuset(text, max_id=max(cpus, default=0))
        except CpusetTooLarge as exc:
            problems.append(
                f"{where} names host CPU(s) beyond this host's highest CPU "
                f"{exc.limit} ({exc.item[:40]!r})"
            )
            return
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            return
        missing = sorted(wanted - cpus)
        if missing:
            problems.append(
                f"{where} names host CPU(s) {missing} that this host "
                f"does not have (host CPUs: {min(cpus)}-{max(cpus)})"
            )

    def nodeset_problems(where, text):
        try:
            wanted = parse_cpuset(text, max_id=max(cells, default=0))
        except CpusetTooLarge as exc:
            problems.append(
                f"{where} names NUMA cell(s) beyond this host's highest "
                f"cell {exc.limit} ({exc.item[:40]!r})"
            )
            return
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            return
        missing = sorted(wanted - cells)
        if missing:
            problems.append(
                f"{where} names NUMA cell(s) {missing}; host cells are "
                f"{sorted(cells)}"
            )

    vcpu = domain.find("vcpu")
    if vcpu is not None and vcpu.get("cpuset"):
        cpuset_problems("<vcpu cpuset>", vcpu.get("cpuset"))
    for pin in domain.iterfind("cputune/vcpupin"):
        cpuset_problems(
            f"<vcpupin vcpu='{pin.get('vcpu')}'>", pin.get("cpuset")
        )
    for tag in ("emulatorpin", "iothreadpin"):
        for pin in domain.iterfind(f"cputune/{tag}"):
            cpuset_problems(f"<{tag}>", pin.get("cpuset"))
    for mem in domain.iterfind("numatune/memory"):
        if mem.get("nodeset"):
            nodeset_problems("<numatune><memory nodeset>", mem.get("nodeset"))
    for node in domain.iterfind("numatune/memnode"):
        nodeset_problems(
            f"<memnode cellid='{node.get('cellid')}'>", node.get("nodeset")
        )
    for page in domain.iterfind("memoryBacking/hugepages/page"):
        size = kib_or_none(page.get("size"), page.get("unit", "KiB"))
        if size not in pages:
            problems.append(
                f"<hugepages><page size='{page.get('size')}' "
                f"unit='{page.get('unit', 'KiB')}'>: this host has no "
                f"pool of that size (pools: {sorted(p for p in pages if p)} "
                "KiB)"
            )
        if page.get("nodeset"):
            nodeset_problems("<hugepages><page nodeset>", page.get("nodeset"))
    for addr in domain.iterfind("devices/hostdev[@type='pci']/source/address"):
        text = "%04x:%02x:%02x.%x" % tuple(
            int(addr.get(k, "0"), 0)
            for k in ("domain", "bus", "slot", "function")
        )
        if text not in pci_addresses:
            problems.append(
                f"<hostdev> PCI address {text} is not a device of this host"
            )
    if mdev_uuids is not None:
        for addr in domain.iterfind(
            "devices/hostdev[@type='mdev']/source/address"
        ):
            if addr.get("uuid") not in mdev_uuids:
                problems.append(
                    f"<hostdev type='mdev'> uuid {addr.get('uuid')} is not "
                    "an mdev of this host"
                )
    # each set parsed once and bounded by the host's cells, and compared
    # as sets: a template repeating thousands of <page>/<memnode> lines
    # costs what the distinct lines cost
    memnodes = {}
    for n in domain.iterfind("numatune/memnode"):
        try:
            memnodes[int(n.get("cellid"))] = frozenset(
                parse_cpuset(n.get("nodeset") or "", max(cells, default=0))
            )
        except ValueError:
            continue  # reported above
    lacking, seen = {}, set()
    for page in domain.iterfind("memoryBacking/hugepages/page"):
        size = kib_or_none(page.get("size"), page.get("unit", "KiB"))
        if size not in lacking:
            lacking[size] = frozenset(
                c.id for c in topology.cells if c.pool(size) is None
            )
        try:
            guest_cells = parse_cpuset(
                page.get("nodeset") or "", max(memnodes, default=0)
            )
        except ValueError:
            continue
        for guest_cell in sorted(guest_cells & memnodes.keys()):
            for h in sorted(memnodes[guest_cell] & lacking[size]):
                problem = (
                    f"<hugepages><page size='{page.get('size')}'> for "
                    f"guest cell {guest_cell}: host cell {h} has no "
                    "pool of that size"
                )
                if problem not in seen:
                    seen.add(problem)
                    problems.append(problem)
    return problems
