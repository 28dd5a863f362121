"""What a domain holds of the host, read from its XML (pure).

The reconciler compares what every defined domain holds (pinned pCPUs,
emulator pCPUs, PCI devices, mdevs, hugepages per host cell) to find two
guests on one pCPU or device, or a page pool given out twice.  A slice
guest's holdings are what its operator's template wrote, so they can only
be read from the XML; a dynamic guest's CPUs and pages come from the
record of its local claim instead (see :mod:`nova_slices.compute.usage`),
because its floating vCPUs are pinned to sets it does not own.

Hugepages are attributed to a host cell only when the guest cell that
uses them is bound to exactly one host cell (``<memnode nodeset>``, or
``<numatune><memory nodeset>`` for a guest without NUMA cells); memory
the kernel may spread over several cells is not counted against any.
"""

import dataclasses

from nova_slices.cpuset import parse_cpuset
from nova_slices.host.capabilities import kib_or_none
from nova_slices.virt.hostdevs import domain_devices


@dataclasses.dataclass(frozen=True)
class Holdings:
    #: host CPUs the guest's vCPUs are pinned to: no other guest may run
    #: there
    pinned_cpus: frozenset = frozenset()
    #: host CPUs of its emulator threads: several guests may share them
    #: (a slice host's emulator cores), but not with anyone's vCPUs
    emulator_cpus: frozenset = frozenset()
    pci: frozenset = frozenset()
    mdevs: frozenset = frozenset()
    #: (((host cell, page size KiB), pages), ...) sorted
    pages: tuple = ()


def _cpus(text):
    try:
        return frozenset(parse_cpuset(text or ""))
    except ValueError:
        return frozenset()  # host_check reports malformed sets


def _single_node(text):
    nodes = _cpus(text)
    return next(iter(nodes)) if len(nodes) == 1 else None


def domain_pages(domain):
    """{(host cell, page size KiB): pages} of a domain's hugepages."""
    memnodes = {
        n.get("cellid"): _single_node(n.get("nodeset"))
        for n in domain.iterfind("numatune/memnode")
    }
    whole = domain.find("numatune/memory")
    whole_node = (
        _single_node(whole.get("nodeset")) if whole is not None else None
    )
    cells = {
        c.get("id"): kib_or_none(c.get("memory"), c.get("unit", "KiB"))
        for c in domain.iterfind("cpu/numa/cell")
    }
    memory = domain.find("memory")
    total_kib = (
        kib_or_none(memory.text, memory.get("unit", "KiB"))
        if memory is not None
        else None
    )
    out = {}
    for page in domain.iterfind("memoryBacking/hugepages/page"):
        size = kib_or_none(page.get("size"), page.get("unit", "KiB"))
        if not size:
            continue
        if cells:
            nodeset = page.get("nodeset")
            ids = (
                [str(i) for i in sorted(_cpus(nodeset))]
                if nodeset
                else list(cells)
            )
            parts = [(memnodes.get(i), cells.get(i)) for i in ids]
        else:
            parts = [(whole_node, total_kib)]
        for node, kib in parts:
            if node is not None and kib:
                key = (node, size)
                out[key] = out.get(key, 0) + -(-kib // size)
    return out


def domain_holdings(domain):
    """Holdings of one domain element, as its XML states them."""
    pins = domain.findall("cputune/vcpupin")
    if pins:
        pinned = frozenset().union(*(_cpus(p.get("cpuset")) for p in pins))
    else:
        vcpu = domain.find("vcpu")
        pinned = _cpus(vcpu.get("cpuset")) if vcpu is not None else frozenset()
    emulator = frozenset().union(
        *(
            _cpus(p.get("cpuset"))
            for p in domain.iterfind("cputune/emulatorpin")
        )
    )
    devices = domain_devices(domain)
    return Holdings(
        pinned,
        emulator,
        devices.pci,
        devices.mdevs,
        tuple(sorted(domain_pages(domain).items())),
    )
