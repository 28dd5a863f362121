"""Domain XML for a dynamic guest, from its request and its placement.

Pure: the normalized request, the fitter's Placement, the host's CPU sets
and the bound devices in, an lxml element out, built element by element
(never by string concatenation, so no value can inject markup).  The
result is what Nova's libvirt driver writes for the same flavor:

* ``<vcpu cpuset>`` over every host CPU the guest may run on, and in
  ``<cputune>`` one ``vcpupin`` per vCPU (its pCPU when pinned, its cell's
  shared CPUs otherwise) and an ``emulatorpin``: the isolated pCPU
  (``isolate``), the shared set (``share``) or the guest's own CPUs;
* ``<numatune>``: ``memory`` over the host cells used and one strict
  ``memnode`` per guest cell;
* ``<cpu>`` with a topology that matches the thread policy and one guest
  ``<numa><cell>`` per guest cell (``memAccess='shared'`` with hugepages);
* ``<memoryBacking><hugepages><page size nodeset/>`` and ``<locked/>``;
* PCI and mdev ``<hostdev>`` elements for the bound devices.
"""

import dataclasses

from lxml import etree

from nova_slices.cpuset import format_cpuset
from nova_slices.errors import GuestError
from nova_slices.host.restrictions import cpu_pools


@dataclasses.dataclass(frozen=True)
class GuestDomain:
    """What the domain needs beyond the request and the placement."""

    name: str
    uuid: str
    disk_path: str
    #: [{"type", "source", "mac_address", "model"}]
    interfaces: tuple = ()
    #: PCI addresses to pass through
    pci: tuple = ()
    #: [{"uuid", "model"}] mdevs to attach
    mdevs: tuple = ()
    arch: str = "x86_64"
    machine: str = "q35"


def _sub(parent, tag, text=None, **attrs):
    el = etree.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _pci_address(parent, address):
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")
    _sub(
        parent,
        "address",
        domain=f"0x{domain}",
        bus=f"0x{bus}",
        slot=f"0x{slot}",
        function=f"0x{function}",
    )


def vcpu_cpusets(request, placement, shared_pool):
    """{vCPU: frozenset of host CPUs} for every vCPU of the guest."""
    if not placement.cells:
        return {v: frozenset(shared_pool) for v in range(request.vcpus)}
    out = {}
    by_guest = {c.id: c for c in request.cells}
    for cell in placement.cells:
        pinned = dict(cell.cpu_pinning)
        for vcpu in sorted(by_guest[cell.guest_cell].cpus):
            if vcpu in pinned:
                out[vcpu] = frozenset({pinned[vcpu]})
            else:
                out[vcpu] = frozenset(cell.shared_cpus)
    return out


def emulator_cpuset(request, placement, vcpu_sets, shared_set):
    """Where QEMU's emulator threads run (Nova's rules)."""
    policy = request.emulator_threads_policy
    if policy == "isolate" and placement.cells:
        isolated = frozenset().union(
            *(c.emulator_cpus for c in placement.cells)
        )
        if isolated:
            return isolated
    if policy == "share" and shared_set:
        return frozenset(shared_set)
    everything = frozenset().union(*vcpu_sets.values())
    if request.realtime_cpus:
        # keep the emulator off the realtime vCPUs' pCPUs
        rt = frozenset().union(
            *(vcpu_sets[v] for v in request.realtime_cpus if v in vcpu_sets)
        )
        if everything - rt:
            return everything - rt
    return everything


def cpu_topology(request, placement, topology):
    """(sockets, cores, threads): one socket per guest cell, threads as
    the pinning put sibling pairs on host cores (1 for isolate)."""
    sockets = max(1, len(placement.cells))
    threads = 1
    if placement.cells and request.cpu_thread_policy != "isolate":
        core_of = {
            cpu.id: cpu.siblings or frozenset({cpu.id})
            for cell in topology.cells
            for cpu in cell.cpus
        }
        per_core = {}
        for cell in placement.cells:
            for _vcpu, pcpu in cell.cpu_pinning:
                key = core_of.get(pcpu, pcpu)
                per_core[key] = per_core.get(key, 0) + 1
        sizes = set(per_core.values())
        if len(sizes) == 1 and per_core:
            threads = sizes.pop()
    if request.vcpus % (sockets * threads):
        threads = 1
    if request.vcpus % sockets:
        sockets = 1
    return sockets, request.vcpus // (sockets * threads), threads


def guest_domain(guest, request, placement, topology, restrictions=None):
    """The domain element for ``guest`` placed by ``placement``."""
    shared_set = restrictions.shared_cpus if restrictions else None
    _, shared_pool = cpu_pools(topology.cpu_ids, restrictions)
    vcpu_sets = vcpu_cpusets(request, placement, shared_pool)
    floating = sorted(v for v, cpus in vcpu_sets.items() if not cpus)
    if floating:
        # the fitter and Placement (VCPU 0) refuse such a guest first
        raise GuestError(
            f"guest {guest.name}: vCPU(s) {format_cpuset(floating)} are not "
            "pinned and this host has no shared CPU for them ([compute] "
            "cpu_dedicated_set is set without cpu_shared_set)",
            code="guest.no-shared-cpus",
            key="[compute] cpu_shared_set",
            value=guest.name,
        )
    numa = bool(placement.cells)
    pages = {c.pagesize_kb for c in placement.cells if c.pagesize_kb}

    dom = etree.Element("domain", type="kvm")
    _sub(dom, "name", guest.name)
    _sub(dom, "uuid", guest.uuid)
    _sub(dom, "memory", request.memory_mb * 1024, unit="KiB")
    _sub(dom, "currentMemory", request.memory_mb * 1024, unit="KiB")
    if pages or request.locked_memory:
        backing = _sub(dom, "memoryBacking")
        if pages:
            huge = _sub(backing, "hugepages")
            for size in sorted(pages):
                nodes = [
                    c.guest_cell
                    for c in placement.cells
                    if c.pagesize_kb == size
                ]
                _sub(
                    huge,
                    "page",
                    size=size,
                    unit="KiB",
                    nodeset=format_cpuset(nodes),
                )
        if request.locked_memory:
            _sub(backing, "locked")
    _sub(
        dom,
        "vcpu",
        request.vcpus,
        placement="static",
        cpuset=format_cpuset(frozenset().union(*vcpu_sets.values())),
    )
    if numa:
        cputune = _sub(dom, "cputune")
        for vcpu in sorted(vcpu_sets):
            _sub(
                cputune,
                "vcpupin",
                vcpu=vcpu,
                cpuset=format_cpuset(vcpu_sets[vcpu]),
            )
        _sub(
            cputune,
            "emulatorpin",
            cpuset=format_cpuset(
                emulator_cpuset(request, placement, vcpu_sets, shared_set)
            ),
        )
        if request.realtime_cpus:
            _sub(
                cputune,
                "vcpusched",
                vcpus=format_cpuset(request.realtime_cpus),
                scheduler="fifo",
                priority=1,
            )
        numatune = _sub(dom, "numatune")
        _sub(
            numatune,
            "memory",
            mode="strict",
            nodeset=format_cpuset(c.host_cell for c in placement.cells),
        )
        for c in placement.cells:
            _sub(
                numatune,
                "memnode",
                cellid=c.guest_cell,
                mode="strict",
                nodeset=c.host_cell,
            )
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch=guest.arch, machine=guest.machine)
    _sub(os_el, "boot", dev="hd")
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if numa:
        cpu = _sub(dom, "cpu", mode="host-passthrough")
        sockets, cores, threads = cpu_topology(request, placement, topology)
        _sub(
            cpu,
            "topology",
            sockets=sockets,
            dies=1,
            cores=cores,
            threads=threads,
        )
        numa_el = _sub(cpu, "numa")
        by_guest = {c.id: c for c in request.cells}
        for c in placement.cells:
            attrs = {
                "id": c.guest_cell,
                "cpus": format_cpuset(by_guest[c.guest_cell].cpus),
                "memory": c.memory_mb * 1024,
                "unit": "KiB",
            }
            if c.pagesize_kb:
                attrs["memAccess"] = "shared"
            _sub(numa_el, "cell", **attrs)
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    disk = _sub(devices, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2", cache="none")
    _sub(disk, "source", file=guest.disk_path)
    _sub(disk, "target", dev="vda", bus="virtio")
    for vif in guest.interfaces:
        iface = _sub(devices, "interface", type=vif["type"])
        _sub(iface, "mac", address=vif["mac_address"])
        if vif["type"] == "bridge":
            _sub(iface, "source", bridge=vif["source"])
        else:
            _sub(iface, "source", network=vif["source"])
        _sub(iface, "model", type=vif.get("model", "virtio"))
    for address in guest.pci:
        hostdev = _sub(
            devices, "hostdev", mode="subsystem", type="pci", managed="yes"
        )
        _pci_address(_sub(hostdev, "source"), address)
    for mdev in guest.mdevs:
        hostdev = _sub(
            devices,
            "hostdev",
            mode="subsystem",
            type="mdev",
            model=mdev.get("model", "vfio-pci"),
            managed="no",
        )
        _sub(_sub(hostdev, "source"), "address", uuid=mdev["uuid"])
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "target", port=0)
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port=0)
    if numa or guest.pci or guest.mdevs:
        # ballooning cannot reclaim pinned or VFIO-locked memory
        _sub(devices, "memballoon", model="none")
    return dom
