"""The PCI ``socket`` policy on hosts whose socket data is partial.

Nova 34 (``nova/pci/stats.py``): ``_filter_pools_for_numa_cells`` first
takes the devices on the guest's own cells, and only when there are too
few widens to the cells of their sockets, through
``_filter_pools_for_socket_affinity``, which finds nothing as soon as
*any* host cell has ``socket = None`` (the libvirt driver leaves it None
for a cell whose CPUs span sockets, lack socket ids, or -- a cell with no
CPUs -- are absent).  So on such a host ``socket`` means ``required``.
The fitter does the same; the differential table below asks Nova's own
code every case.

Memory-only cells: Nova's ``socket = None`` for them is a by-product of
reading a cell's socket from its CPUs (it even logs "multiple sockets per
NUMA node"), and makes the socket policy ``required`` on every host with
HBM or CXL memory nodes.  Inside Nova the fitter sees Nova's cells and
agrees with it (last rows of the table).  On the driver's own host model
a memory-only cell has the socket of its nearest CPU-bearing cell by
NUMA distance (``nova_slices.host.capabilities``): its socket is known,
so it does not make the host partial, and a device hanging off the HBM of
the guest's socket serves a ``socket`` guest.  Only a memory-only cell
without distances (socket unknown) makes the host partial, as in Nova.
"""

import itertools

import pytest
from lxml import etree
from nova import objects
from nova.pci import stats as nova_stats

from nova_slices.fit.fitter import fit
from nova_slices.fit.model import Placement, Rejection
from nova_slices.fit.pci import (
    PciAliasSpec,
    PciRequest,
    parse_aliases,
    pci_choice,
)
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import HostDevices, PciDevice
from nova_slices.host.topology import Cell, Cpu, HostTopology, PagePool
from nova_slices.nova import numa
from nova_slices.request.build import build_request
from tests import hostgen

objects.register_all()

VENDOR, PRODUCT = "8086", "1520"
ALIAS = PciAliasSpec("nic", VENDOR, PRODUCT, None, None)
POLICIES = ("required", "legacy", "preferred", "socket")
MEM = "memory-only"

# socket of each of 4 host cells; MEM: a cell without CPUs
SOCKET_MAPS = {
    "complete": (0, 0, 1, 1),
    "cell-3-unknown": (0, 0, 1, None),
    "cell-0-unknown": (None, 0, 1, 1),
    "all-unknown": (None, None, None, None),
    "memory-only-cell-3": (0, 0, 1, MEM),
}


def nova_topology(sockets):
    """Nova's NUMATopology: 4 CPUs a cell, or none for MEM."""
    cells = []
    for cid, socket in enumerate(sockets):
        cpus = set() if socket == MEM else set(range(4 * cid, 4 * cid + 4))
        cells.append(
            objects.NUMACell(
                id=cid,
                cpuset=set(),
                pcpuset=cpus,
                memory=4096,
                cpu_usage=0,
                memory_usage=0,
                pinned_cpus=set(),
                siblings=[{c} for c in sorted(cpus)],
                mempages=[
                    objects.NUMAPagesTopology(
                        size_kb=4, total=1024 * 1024, used=0, reserved=0
                    )
                ],
                network_metadata=objects.NetworkMetadata(
                    physnets=set(), tunneled=False
                ),
                socket=None if socket == MEM else socket,
            )
        )
    return objects.NUMATopology(cells=cells)


def nova_qualifies(topology, nodes, guest_cells, count, policy):
    """Whether Nova's PCI stats find ``count`` devices for the policy."""
    pci_stats = nova_stats.PciDeviceStats(topology)
    pools = [
        {
            "vendor_id": VENDOR,
            "product_id": PRODUCT,
            "dev_type": "type-PCI",
            "numa_node": node,
            "count": nodes.count(node),
        }
        for node in dict.fromkeys(nodes)
    ]
    request = objects.InstancePCIRequest(
        count=count,
        spec=[{"vendor_id": VENDOR, "product_id": PRODUCT}],
        numa_policy=policy,
        alias_name="nic",
    )
    kept = pci_stats._filter_pools_for_numa_cells(
        pools, request, [objects.InstanceNUMACell(id=c) for c in guest_cells]
    )
    return sum(p["count"] for p in kept) >= count


def our_qualifies(topology, nodes, guest_cells, count, policy):
    ours, _, _ = numa.host_model(topology)
    devices = tuple(
        PciDevice(
            f"0000:{i:02x}:00.0",
            VENDOR,
            PRODUCT,
            numa_node=node,
            socket=None if node is None else ours.socket_of_cell(node),
            dev_type="type-PCI",
        )
        for i, node in enumerate(nodes)
    )
    request = PciRequest("nic", count, ALIAS, policy)
    chosen = pci_choice([request], devices, set(guest_cells), ours)
    return chosen is not None


def cases():
    for name, sockets in SOCKET_MAPS.items():
        cpu_cells = [c for c, s in enumerate(sockets) if s != MEM]
        guests = [
            g for k in (1, 2) for g in itertools.combinations(cpu_cells, k)
        ]
        nodes = [0, 1, 2, 3, None]
        for guest, pair, count, policy in itertools.product(
            guests,
            itertools.combinations_with_replacement(nodes, 2),
            (1, 2),
            POLICIES,
        ):
            yield name, sockets, guest, pair, count, policy


CASES = list(cases())


@pytest.mark.parametrize("name", list(SOCKET_MAPS))
def test_same_answer_as_nova_pci_stats(name):
    """Every guest cell set, device pair, count and policy: the fitter's
    PCI choice and Nova's ``_filter_pools_for_numa_cells`` agree."""
    rows = [c for c in CASES if c[0] == name]
    disagree = []
    for _, sockets, guest, pair, count, policy in rows:
        topology = nova_topology(sockets)
        theirs = nova_qualifies(topology, list(pair), guest, count, policy)
        ours = our_qualifies(topology, list(pair), guest, count, policy)
        if theirs != ours:
            disagree.append((guest, pair, count, policy, theirs, ours))
    assert disagree == []
    assert len(rows) > 200


def test_the_table_covers_the_socket_cases():
    """Cases where partial data changes the answer are in the table."""
    widened = [
        c
        for c in CASES
        if c[0] == "complete"
        and c[5] == "socket"
        and c[2] == (0,)
        and c[3] == (1, 1)
    ]
    assert widened and all(
        nova_qualifies(nova_topology(c[1]), list(c[3]), c[2], c[4], c[5])
        for c in widened
    )
    # cell 3's socket unknown: the same guest and devices are refused
    assert not nova_qualifies(
        nova_topology(SOCKET_MAPS["cell-3-unknown"]), [1], (0,), 1, "socket"
    )


# -- the fitter's answer and reason --------------------------------------


def flat(sockets):
    """4 cells of 2 CPUs, 4 GiB each; ``sockets`` per cell (None:
    unknown)."""
    cells = []
    for cid, socket in enumerate(sockets):
        cpus = tuple(
            Cpu(c, socket=socket, core=c, siblings=frozenset({c}))
            for c in (2 * cid, 2 * cid + 1)
        )
        cells.append(
            Cell(cid, cpus, 4 << 20, (PagePool(4, 1 << 20),), socket=socket)
        )
    return HostTopology(tuple(cells))


ALIASES = parse_aliases(
    [f'{{"name": "nic", "vendor_id": "{VENDOR}", "product_id": "{PRODUCT}"}}']
)


def socket_guest(pin):
    return build_request(
        2,
        1024,
        {
            "hw:cpu_policy": "dedicated",
            "hw:numa_nodes": "1",
            "hw:numa_node.0": str(pin),
            "pci_passthrough:alias": "nic:1",
            "hw:pci_numa_affinity_policy": "socket",
        },
    )


def one_device(topology, node):
    return HostDevices(
        (
            PciDevice(
                "0000:81:00.0",
                VENDOR,
                PRODUCT,
                numa_node=node,
                socket=topology.socket_of_cell(node),
                dev_type="type-PCI",
            ),
        )
    )


def fit_socket(topology, guest, device):
    """A socket-policy guest pinned to cell ``guest``, one device on
    cell ``device``: the fitter's answer."""
    return fit(
        topology,
        socket_guest(guest),
        devices=one_device(topology, device),
        aliases=ALIASES,
    )


def test_complete_host_widens_to_the_socket():
    topology = flat((0, 0, 1, 1))
    got = fit_socket(topology, 0, 1)
    assert isinstance(got, Placement)
    assert got.pci_devices == ("0000:81:00.0",)
    got = fit_socket(topology, 0, 2)
    assert [r.code for r in got.reasons] == ["pci.no-device-on-socket"]


# (cell whose socket is unknown, guest's cell, device's cell)
PARTIAL = [(3, 0, 1), (2, 1, 0), (0, 0, 1), (1, 0, 1)]


@pytest.mark.parametrize("unknown, guest, device", PARTIAL)
def test_partial_host_refuses_the_socket_with_the_cell_named(
    unknown, guest, device
):
    sockets = [0, 0, 1, 1]
    sockets[unknown] = None
    topology = flat(sockets)
    assert topology.cells_without_socket == (unknown,)
    # a device on the guest's own cell still serves (Nova's first step)
    got = fit_socket(topology, guest, guest)
    assert isinstance(got, Placement)
    # one on the other cell of its socket does not any more
    got = fit_socket(topology, guest, device)
    assert isinstance(got, Rejection)
    [reason] = got.reasons
    assert (reason.code, reason.host_cell) == ("pci.socket-unknown", unknown)
    assert f"host cell(s) {unknown} have no socket" in reason.message
    assert (reason.requested, reason.available) == (1, 0)


def test_memory_only_cells_with_distances_keep_the_socket_policy():
    """The driver's model of a Xeon Max in HBM flat mode: each socket's
    HBM is a memory-only cell with that socket (nearest by distance)."""
    topology = parse_capabilities(hostgen.hbm_flat())
    assert [c.socket for c in topology.cells] == [0, 1, 0, 1]
    assert [c.memory_only for c in topology.cells] == [
        False,
        False,
        True,
        True,
    ]
    assert topology.cells_without_socket == ()
    # a device hanging off socket 0's HBM cell serves a guest on cell 0
    got = fit_socket(topology, 0, 2)
    assert isinstance(got, Placement)
    got = fit_socket(topology, 0, 3)
    assert [r.code for r in got.reasons] == ["pci.no-device-on-socket"]


def test_memory_only_cells_as_nova_reports_them_make_the_host_partial():
    """The same kind of host as Nova's scheduler holds it (a memory-only
    cell's socket None): inside Nova the fitter answers as Nova does."""
    topology, _, _ = numa.host_model(nova_topology((0, 1, MEM, MEM)))
    assert topology.cells_without_socket == (2, 3)
    devices = HostDevices(
        (PciDevice("0000:81:00.0", VENDOR, PRODUCT, numa_node=2),)
    )
    got = fit(topology, socket_guest(0), devices=devices, aliases=ALIASES)
    assert [r.code for r in got.reasons] == ["pci.socket-unknown"]


def test_memory_only_cell_without_distances_is_unknown():
    """No distance names its nearest CPU cell: its socket is unknown, and
    the host is partial, as in Nova."""
    xml = hostgen.capabilities_xml(
        hostgen.HostSpec(
            sockets=2,
            cores_per_cell=2,
            memory_cells=(hostgen.MemoryCell(home=0, memory_gib=4),),
        )
    )
    doc = etree.fromstring(xml.encode())
    for distances in doc.iter("distances"):
        distances.getparent().remove(distances)
    topology = parse_capabilities(etree.tostring(doc).decode())
    assert topology.cells_without_socket == (2,)
