"""Realistic libvirt capabilities XML from a compact host description.

:class:`HostSpec` says how many sockets, NUMA cells per socket, cores per
cell and threads per core a host has, its memory and hugepages per cell,
its NUMA distances, and any memory-only cells (:class:`MemoryCell`: HBM in
flat mode, GPU memory).  :func:`capabilities_xml` turns it into the
document ``virConnectGetCapabilities`` would return, numbered the way
Linux numbers x86 and Arm servers:

* CPU ids: the first thread of every core, socket 0 first, then socket 1
  and so on; then the second threads in the same order, offset by the
  total core count (a 2 x 32-core SMT host: CPU 0's sibling is 64);
* cells: socket 0's cells, then socket 1's, ...; memory-only cells after
  every CPU-bearing cell (as the kernel numbers hot-added/HBM/GPU nodes);
* each cell's 4 KiB (or 64 KiB) base-page pool is what its hugepage pools
  leave of its memory, as the kernel reports it.

``cluster_id`` is only written when ``cores_per_cluster`` is set: libvirt
added the attribute in 10.x and the 9.0 ``capability.rng`` in this tree
refuses it, so the named builders below, whose output must validate, leave
it out.

The named builders (``intel_snc_2s()`` ...) each imitate one real kind of
machine; their docstrings say which.
"""

import dataclasses
import uuid

from lxml import etree

K4 = 4
K64 = 64
M2 = 2048
M512 = 512 * 1024
G1 = 1024 * 1024
GIB_KB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class MemoryCell:
    """A NUMA cell with memory and no CPUs, numbered after the CPU cells."""

    #: the CPU-bearing cell this one is nearest to
    home: int
    memory_gib: int
    #: hugepage size (KiB) -> count; the base pool gets what is left
    hugepages: tuple = ()
    #: distance to ``home``; every other cell is ``far`` away
    near: int = 13
    far: int = 23


@dataclasses.dataclass(frozen=True)
class HostSpec:
    sockets: int = 1
    cells_per_socket: int = 1
    cores_per_cell: int = 8
    threads_per_core: int = 2
    memory_per_cell_gib: int = 32
    #: hugepage size (KiB) -> count, per CPU-bearing cell, as pairs
    hugepages: tuple = ()
    base_page_kb: int = K4
    #: distance between two cells of one socket, and across sockets
    same_socket: int = 12
    remote: int = 21
    dies_per_socket: int = 1
    #: None: no ``cluster_id`` attribute (libvirt < 10.x schema)
    cores_per_cluster: int | None = None
    memory_cells: tuple = ()  # of MemoryCell
    arch: str = "x86_64"
    model: str | None = None
    vendor: str | None = None

    @property
    def cpu_cells(self):
        return self.sockets * self.cells_per_socket

    @property
    def cores(self):
        return self.cpu_cells * self.cores_per_cell

    @property
    def cells(self):
        return self.cpu_cells + len(self.memory_cells)

    def socket_of(self, cell_id):
        return cell_id // self.cells_per_socket

    def distance(self, a, b):
        if a == b:
            return 10
        n = self.cpu_cells
        if a >= n or b >= n:
            mem, other = (a, b) if a >= n else (b, a)
            m = self.memory_cells[mem - n]
            return m.near if other == m.home else m.far
        if self.socket_of(a) == self.socket_of(b):
            return self.same_socket
        return self.remote


def _sub(parent, tag, text=None, **attrs):
    el = etree.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _pages(cell_el, spec, memory_kb, hugepages):
    huge = dict(hugepages)
    base = (memory_kb - sum(s * n for s, n in huge.items())) // (
        spec.base_page_kb
    )
    if base < 0:
        raise ValueError("hugepages exceed the cell's memory")
    for size, count in sorted({spec.base_page_kb: base, **huge}.items()):
        _sub(cell_el, "pages", count, unit="KiB", size=size)


def _cpu_attrs(spec, cell_id, core_in_cell, thread):
    """(cpu id, attributes) of one thread, numbered like Linux does."""
    socket = spec.socket_of(cell_id)
    cores_per_socket = spec.cells_per_socket * spec.cores_per_cell
    core = (cell_id % spec.cells_per_socket) * spec.cores_per_cell
    core += core_in_cell
    first = socket * cores_per_socket + core
    siblings = [first + t * spec.cores for t in range(spec.threads_per_core)]
    attrs = {
        "socket_id": socket,
        "die_id": core // (cores_per_socket // spec.dies_per_socket),
    }
    if spec.cores_per_cluster:
        attrs["cluster_id"] = core // spec.cores_per_cluster
    attrs["core_id"] = core
    attrs["siblings"] = ",".join(map(str, siblings))
    return siblings[thread], attrs


def capabilities_xml(spec, host_uuid=None):
    """The capabilities document of ``spec`` as text."""
    if (spec.cells_per_socket * spec.cores_per_cell) % spec.dies_per_socket:
        raise ValueError("cores per socket must divide into dies")
    root = etree.Element("capabilities")
    host = _sub(root, "host")
    _sub(host, "uuid", host_uuid or uuid.uuid5(uuid.NAMESPACE_DNS, repr(spec)))
    cpu = _sub(host, "cpu")
    _sub(cpu, "arch", spec.arch)
    if spec.model:
        _sub(cpu, "model", spec.model)
    if spec.vendor:
        _sub(cpu, "vendor", spec.vendor)
    _sub(
        cpu,
        "topology",
        sockets=spec.sockets,
        dies=spec.dies_per_socket,
        cores=spec.cells_per_socket
        * spec.cores_per_cell
        // spec.dies_per_socket,
        threads=spec.threads_per_core,
    )
    sizes = {spec.base_page_kb} | {s for s, _ in spec.hugepages}
    for m in spec.memory_cells:
        sizes |= {s for s, _ in m.hugepages}
    for size in sorted(sizes):
        _sub(cpu, "pages", unit="KiB", size=size)
    _sub(host, "power_management")
    _sub(host, "iommu", support="yes")
    cells = _sub(_sub(host, "topology"), "cells", num=spec.cells)
    for cell_id in range(spec.cells):
        cell = _sub(cells, "cell", id=cell_id)
        if cell_id < spec.cpu_cells:
            memory_kb = spec.memory_per_cell_gib * GIB_KB
            hugepages = spec.hugepages
        else:
            m = spec.memory_cells[cell_id - spec.cpu_cells]
            memory_kb, hugepages = m.memory_gib * GIB_KB, m.hugepages
        _sub(cell, "memory", memory_kb, unit="KiB")
        _pages(cell, spec, memory_kb, hugepages)
        dist = _sub(cell, "distances")
        for other in range(spec.cells):
            _sub(
                dist,
                "sibling",
                id=other,
                value=spec.distance(cell_id, other),
            )
        if cell_id >= spec.cpu_cells:
            _sub(cell, "cpus", num=0)
            continue
        threads = sorted(
            _cpu_attrs(spec, cell_id, core, thread)
            for core in range(spec.cores_per_cell)
            for thread in range(spec.threads_per_core)
        )
        cpus = _sub(cell, "cpus", num=len(threads))
        for cpu_id, attrs in threads:
            _sub(cpus, "cpu", id=cpu_id, **attrs)
    etree.indent(root)
    return etree.tostring(root, encoding="unicode") + "\n"


# --- named hosts -----------------------------------------------------------


def intel_snc_2s():
    """2 x Xeon Platinum 8480+ (Sapphire Rapids, 56 cores) with sub-NUMA
    clustering (SNC2): 2 cells per socket of 28 cores x 2 threads, 224
    CPUs; 256 GiB per cell with 200 x 1G and 2048 x 2M hugepages; SNC
    neighbours at 12, the other socket at 21."""
    return capabilities_xml(
        HostSpec(
            sockets=2,
            cells_per_socket=2,
            cores_per_cell=28,
            memory_per_cell_gib=256,
            hugepages=((M2, 2048), (G1, 200)),
            same_socket=12,
            remote=21,
            model="SapphireRapids",
            vendor="Intel",
        )
    )


def amd_l3_as_numa_2s():
    """2 x EPYC 7763 (Milan, 8 CCDs x 8 cores) with "L3 cache as NUMA
    domain" on: 8 cells per socket, one per CCD (die), 16 cells of 8 cores
    x 2 threads, 256 CPUs; 64 GiB per cell with 48 x 1G; AMD's distances:
    11 within a socket, 32 across."""
    return capabilities_xml(
        HostSpec(
            sockets=2,
            cells_per_socket=8,
            cores_per_cell=8,
            dies_per_socket=8,
            memory_per_cell_gib=64,
            hugepages=((G1, 48),),
            same_socket=11,
            remote=32,
            model="EPYC-Milan",
            vendor="AMD",
        )
    )


#: GB200 compute tray: 2 Grace CPUs (cells 0, 1) and 4 Blackwell GPUs;
#: the NVIDIA driver gives each GPU 8 NUMA nodes (one holding its HBM, 7
#: empty ones kept for MIG partitions): GPUs 0-1 -> cells 2-17, nearest
#: Grace 0; GPUs 2-3 -> cells 18-33, nearest Grace 1.  2 + 4 x 8 = 34.
GB200_GPUS_PER_GRACE = 2
GB200_NODES_PER_GPU = 8
GB200_HBM_GIB = 184


def gb200_34():
    """An NVIDIA GB200 NVL72 compute tray as the host sees it: 34 NUMA
    cells.  Cells 0-1: Grace (72 Arm Neoverse V2 cores, no SMT, aarch64,
    64 KiB base pages, 480 GiB LPDDR5X) with 2M and 512M hugepages, the
    two at distance 40.  Cells 2-33: four Blackwell GPUs x 8 memory-only
    cells; the first cell of each GPU holds its 184 GiB of HBM, the other
    seven are the empty MIG placeholders.  A GPU cell is 80 from its own
    Grace and 120 from everything else."""
    memory = []
    for grace in range(2):
        for _gpu in range(GB200_GPUS_PER_GRACE):
            for node in range(GB200_NODES_PER_GPU):
                memory.append(
                    MemoryCell(
                        home=grace,
                        memory_gib=GB200_HBM_GIB if node == 0 else 0,
                        near=80,
                        far=120,
                    )
                )
    return capabilities_xml(
        HostSpec(
            sockets=2,
            cells_per_socket=1,
            cores_per_cell=72,
            threads_per_core=1,
            memory_per_cell_gib=480,
            hugepages=((M2, 4096), (M512, 256)),
            base_page_kb=K64,
            remote=40,
            memory_cells=tuple(memory),
            arch="aarch64",
            model="Neoverse-V2",
            vendor="ARM",
        )
    )


def hbm_flat():
    """2 x Xeon CPU Max 9480 (Sapphire Rapids + 64 GiB HBM2e each) in HBM
    flat mode, no SNC: cells 0-1 hold the 56 cores x 2 threads and 512 GiB
    DDR5 of each socket; cells 2-3 are each socket's HBM, memory-only, at
    13 from their own socket's cell and 23 from the rest (the numbers
    ``numactl -H`` shows on these machines)."""
    return capabilities_xml(
        HostSpec(
            sockets=2,
            cores_per_cell=56,
            memory_per_cell_gib=512,
            hugepages=((G1, 256),),
            remote=21,
            memory_cells=tuple(
                MemoryCell(home=s, memory_gib=64, hugepages=((G1, 32),))
                for s in range(2)
            ),
            model="SapphireRapids",
            vendor="Intel",
        )
    )


def two_socket_512_threads():
    """2 x EPYC 9754 (Bergamo, 128 Zen 4c cores x 2 threads) in NPS4: 4
    cells per socket of 32 cores, 8 cells, 512 CPUs; 192 GiB per cell
    with 160 x 1G; 12 within a socket, 32 across."""
    return capabilities_xml(
        HostSpec(
            sockets=2,
            cells_per_socket=4,
            cores_per_cell=32,
            memory_per_cell_gib=192,
            hugepages=((G1, 160),),
            same_socket=12,
            remote=32,
            model="EPYC-Genoa",
            vendor="AMD",
        )
    )


def laptop():
    """A laptop or small desktop: one socket, one cell, 8 cores x 2
    threads (e.g. a Ryzen 7 7840U), 32 GiB, no hugepages reserved."""
    return capabilities_xml(
        HostSpec(
            cores_per_cell=8,
            memory_per_cell_gib=32,
            vendor="AMD",
        )
    )


BUILDERS = {
    f.__name__: f
    for f in (
        intel_snc_2s,
        amd_l3_as_numa_2s,
        gb200_34,
        hbm_flat,
        two_socket_512_threads,
        laptop,
    )
}


# --- node devices ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PciGpu:
    """A whole-PCI device for a test-driver node file (an A100 by
    default); ``numa_node`` None writes no ``<numa>`` element."""

    bus: int
    numa_node: int | None
    vendor: int = 0x10DE
    product: int = 0x20B5
    class_code: int = 0x030200
    function: int = 0

    @property
    def address(self):
        return f"0000:{self.bus:02x}:00.{self.function}"


def node_xml(devices):
    """A libvirt test-driver node file (``test:///PATH``) holding
    ``devices`` (:class:`PciGpu`), each in its own IOMMU group."""
    root = etree.Element("node")
    for i, dev in enumerate(devices):
        el = _sub(root, "device")
        _sub(el, "name", f"pci_0000_{dev.bus:02x}_00_{dev.function}")
        _sub(el, "parent", "computer")
        cap = _sub(el, "capability", type="pci")
        _sub(cap, "class", f"0x{dev.class_code:06x}")
        for tag, value in (
            ("domain", 0),
            ("bus", dev.bus),
            ("slot", 0),
            ("function", dev.function),
        ):
            _sub(cap, tag, value)
        _sub(cap, "product", "GPU", id=f"0x{dev.product:04x}")
        _sub(cap, "vendor", "Vendor", id=f"0x{dev.vendor:04x}")
        group = _sub(cap, "iommuGroup", number=100 + i)
        _sub(
            group,
            "address",
            domain="0x0000",
            bus=f"0x{dev.bus:02x}",
            slot="0x00",
            function=f"0x{dev.function}",
        )
        if dev.numa_node is not None:
            _sub(cap, "numa", node=dev.numa_node)
    etree.indent(root)
    return etree.tostring(root, encoding="unicode") + "\n"


def gpus_on(cells, first_bus=0x10):
    """One :class:`PciGpu` per entry of ``cells`` (a cell id, repeated
    for several GPUs on one cell), on buses from ``first_bus``."""
    return tuple(
        PciGpu(first_bus + 0x10 * i, cell) for i, cell in enumerate(cells)
    )


def write_bundle(directory, capabilities, devices):
    """A host bundle (capabilities.xml, node.xml) in ``directory``, a
    pathlib.Path; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "capabilities.xml").write_text(capabilities)
    (directory / "node.xml").write_text(node_xml(devices))
    return directory
