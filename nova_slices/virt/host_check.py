"""Check a domain against the host it is about to run on.

libvirt's test driver accepts pins to CPUs that do not exist, and even a
real libvirtd only notices some mistakes at start time.  A slice template
is written once by hand for one machine; if it is copied to a different
machine, or the machine changes, we want the spawn to fail with a message
that names the element and the missing CPU, cell, page size or device
rather than start a guest pinned wrongly.
"""

from lxml import etree

from nova_slices.cpuset import parse_cpuset


def host_facts(capabilities_xml):
    """(cpu ids, cell ids, page sizes in KiB) from capabilities XML."""
    root = etree.fromstring(capabilities_xml.encode())
    cpus = {
        int(c.get("id"))
        for c in root.iterfind("host/topology/cells/cell/cpus/cpu")
    }
    cells = {
        int(c.get("id")) for c in root.iterfind("host/topology/cells/cell")
    }
    pages = {
        _kib(p.get("size"), p.get("unit", "KiB"))
        for p in root.iterfind("host/topology/cells/cell/pages")
    }
    return cpus, cells, pages


_UNITS = {
    "b": 1 / 1024,
    "bytes": 1 / 1024,
    "k": 1,
    "kib": 1,
    "kb": 1,
    "m": 1024,
    "mib": 1024,
    "mb": 1024,
    "g": 1024**2,
    "gib": 1024**2,
    "gb": 1024**2,
}


def _kib(size, unit):
    factor = _UNITS.get((unit or "KiB").lower())
    if factor is None:
        return None
    return int(int(size) * factor)


def check_domain(domain, capabilities_xml, pci_addresses):
    """Return a list of problems (empty when the domain fits the host)."""
    cpus, cells, pages = host_facts(capabilities_xml)
    problems = []

    def cpuset_problems(where, text):
        try:
            wanted = parse_cpuset(text)
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
            wanted = parse_cpuset(text)
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
        size = _kib(page.get("size"), page.get("unit", "KiB"))
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
    return problems
