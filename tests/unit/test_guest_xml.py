"""Dynamic guests' domain XML, element by element, on the gpu8-2s host.

Each guest is fitted by the real fitter on the shipped capabilities, then
rendered; every document must validate against libvirt's domain.rng and
pass the host check (every pCPU, cell, page size and device exists).
"""

from lxml import etree

from nova_slices.fit.fitter import fit
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.restrictions import HostRestrictions
from nova_slices.request.build import build_request
from nova_slices.virt.guest_xml import GuestDomain, guest_domain
from nova_slices.virt.host_check import check_domain
from nova_slices.virt.schema import validate_domain_xml
from tests.unit.test_host_bundle import CAPS

TOPOLOGY = parse_capabilities(CAPS.read_text())
# cores 0 and 8 of every cell (and siblings) for the host, as in Nova
SHARED = frozenset(
    c for base in (0, 8, 16, 24, 32, 40, 48, 56) for c in (base, base + 64)
)
RESTRICTIONS = HostRestrictions(
    dedicated_cpus=TOPOLOGY.cpu_ids - SHARED, shared_cpus=SHARED
)
PCI = ("0000:3b:00.2",)


def render(vcpus, memory_mb, specs=None, pci=(), mdevs=()):
    request = build_request(vcpus, memory_mb, specs or {})
    placement = fit(TOPOLOGY, request, restrictions=RESTRICTIONS)
    assert not hasattr(placement, "reasons"), placement
    guest = GuestDomain(
        "g",
        "11111111-2222-3333-4444-555555555555",
        "/var/lib/nova/instances/g/disk",
        pci=pci,
        mdevs=mdevs,
    )
    dom = guest_domain(guest, request, placement, TOPOLOGY, RESTRICTIONS)
    validate_domain_xml(dom)
    addresses = {"0000:3b:00.2"}
    assert check_domain(dom, TOPOLOGY, addresses) == []
    return dom, placement


def pins(dom):
    return {
        int(p.get("vcpu")): p.get("cpuset")
        for p in dom.iterfind("cputune/vcpupin")
    }


def test_shared_guest_without_numa_floats_over_the_shared_set():
    dom, _ = render(4, 4096)
    assert dom.find("vcpu").text == "4"
    assert (
        dom.find("vcpu").get("cpuset")
        == "0,8,16,24,32,40,48,56,64,72,80,88,96,104,112,120"
    )
    assert dom.find("cputune") is None and dom.find("numatune") is None
    assert dom.find("cpu") is None
    assert dom.find("memory").text == str(4096 * 1024)


def test_one_cell_shared_guest():
    dom, placement = render(2, 2048, {"hw:numa_nodes": "1"})
    (cell,) = placement.cells
    shared = ",".join(
        str(c)
        for c in sorted(SHARED)
        if TOPOLOGY.cell_of_cpu(c).id == cell.host_cell
    )
    assert set(pins(dom).values()) == {shared}
    assert dom.find("numatune/memory").attrib == {
        "mode": "strict",
        "nodeset": str(cell.host_cell),
    }
    (memnode,) = dom.findall("numatune/memnode")
    assert memnode.attrib == {
        "cellid": "0",
        "mode": "strict",
        "nodeset": str(cell.host_cell),
    }
    (numa_cell,) = dom.findall("cpu/numa/cell")
    assert numa_cell.attrib == {
        "id": "0",
        "cpus": "0-1",
        "memory": str(2048 * 1024),
        "unit": "KiB",
    }
    assert dom.find("memoryBacking") is None


def test_two_cells_dedicated_with_isolated_emulator():
    dom, placement = render(
        8,
        8192,
        {
            "hw:numa_nodes": "2",
            "hw:cpu_policy": "dedicated",
            "hw:emulator_threads_policy": "isolate",
        },
    )
    pinned = pins(dom)
    assert sorted(pinned) == list(range(8))
    host_cpus = [int(v) for v in pinned.values()]
    assert len(set(host_cpus)) == 8
    assert not set(host_cpus) & SHARED
    emulator = dom.find("cputune/emulatorpin").get("cpuset")
    assert emulator.isdigit() and int(emulator) not in host_cpus
    assert int(emulator) in RESTRICTIONS.dedicated_cpus
    memnodes = dom.findall("numatune/memnode")
    assert [m.get("nodeset") for m in memnodes] == [
        str(c.host_cell) for c in placement.cells
    ]
    assert len({c.host_cell for c in placement.cells}) == 2
    assert [c.get("cpus") for c in dom.iterfind("cpu/numa/cell")] == [
        "0-3",
        "4-7",
    ]
    # vCPUs pinned onto sibling pairs: the guest sees 2 threads per core
    assert dom.find("cpu/topology").attrib == {
        "sockets": "2",
        "dies": "1",
        "cores": "2",
        "threads": "2",
    }
    for vcpu, cpu in pinned.items():
        assert (
            TOPOLOGY.cell_of_cpu(int(cpu)).id
            == placement.cells[vcpu // 4].host_cell
        )


def test_isolate_thread_policy_gives_one_thread_per_core():
    dom, _ = render(
        4,
        4096,
        {"hw:cpu_policy": "dedicated", "hw:cpu_thread_policy": "isolate"},
    )
    assert dom.find("cpu/topology").get("threads") == "1"
    assert dom.find("cpu/topology").get("cores") == "4"


def test_mixed_guest_pins_only_its_dedicated_vcpus():
    dom, placement = render(
        4,
        4096,
        {"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "^0-1"},
    )
    pinned = pins(dom)
    (cell,) = placement.cells
    assert dict(cell.cpu_pinning).keys() == {2, 3}
    for vcpu in (2, 3):
        assert pinned[vcpu].isdigit()
        assert int(pinned[vcpu]) in RESTRICTIONS.dedicated_cpus
    for vcpu in (0, 1):
        assert "," in pinned[vcpu]
        assert {int(c) for c in pinned[vcpu].split(",")} <= SHARED
    # emulator with no policy runs on the guest's own CPUs
    emulator = dom.find("cputune/emulatorpin").get("cpuset")
    assert int(pinned[2]) in _expand(emulator)


def test_hugepages_1g_back_every_cell():
    dom, placement = render(
        4,
        4096,
        {"hw:numa_nodes": "2", "hw:mem_page_size": "1GB"},
    )
    (page,) = dom.findall("memoryBacking/hugepages/page")
    assert page.attrib == {"size": "1048576", "unit": "KiB", "nodeset": "0-1"}
    for cell in dom.iterfind("cpu/numa/cell"):
        assert cell.get("memAccess") == "shared"
        assert cell.get("memory") == str(2048 * 1024)
    assert {c.pagesize_kb for c in placement.cells} == {1048576}


def test_explicit_numa_node_pin_is_honoured():
    dom, placement = render(
        4,
        4096,
        {
            "hw:numa_nodes": "2",
            "hw:numa_node.0": "3",
            "hw:numa_node.1": "1",
            "hw:cpu_policy": "dedicated",
        },
    )
    assert [m.get("nodeset") for m in dom.findall("numatune/memnode")] == [
        "3",
        "1",
    ]
    assert dom.find("numatune/memory").get("nodeset") == "1,3"
    for vcpu, cpu in pins(dom).items():
        expected = 3 if vcpu < 2 else 1
        assert TOPOLOGY.cell_of_cpu(int(cpu)).id == expected


def test_realtime_vcpus_and_locked_memory():
    dom, _ = render(
        4,
        4096,
        {
            "hw:cpu_policy": "dedicated",
            "hw:cpu_realtime": "yes",
            "hw:cpu_realtime_mask": "^0",
            "hw:mem_page_size": "large",
            "hw:locked_memory": "true",
        },
    )
    sched = dom.find("cputune/vcpusched")
    assert sched.attrib == {
        "vcpus": "1-3",
        "scheduler": "fifo",
        "priority": "1",
    }
    assert dom.find("memoryBacking/locked") is not None
    emulator = _expand(dom.find("cputune/emulatorpin").get("cpuset"))
    realtime_pcpus = {int(pins(dom)[v]) for v in (1, 2, 3)}
    assert not emulator & realtime_pcpus


def test_pci_and_mdev_hostdevs():
    dom, _ = render(
        2,
        2048,
        pci=PCI,
        mdevs=(
            {
                "uuid": "3e9c4b0a-6f0e-4d2b-9d59-8a7c2c1f0001",
                "model": "vfio-pci",
            },
        ),
    )
    (pci,) = dom.findall("devices/hostdev[@type='pci']")
    assert pci.get("managed") == "yes"
    assert pci.find("source/address").attrib == {
        "domain": "0x0000",
        "bus": "0x3b",
        "slot": "0x00",
        "function": "0x2",
    }
    (mdev,) = dom.findall("devices/hostdev[@type='mdev']")
    assert mdev.get("model") == "vfio-pci"
    assert (
        mdev.find("source/address").get("uuid")
        == "3e9c4b0a-6f0e-4d2b-9d59-8a7c2c1f0001"
    )
    assert dom.find("devices/memballoon").get("model") == "none"


def test_names_are_text_not_markup():
    request = build_request(1, 512, {})
    placement = fit(TOPOLOGY, request, restrictions=RESTRICTIONS)
    guest = GuestDomain("x</name><evil/>", "u", "/d")
    dom = guest_domain(guest, request, placement, TOPOLOGY, RESTRICTIONS)
    text = etree.tostring(dom, encoding="unicode")
    assert "<evil/>" not in text
    assert etree.fromstring(text).findtext("name") == "x</name><evil/>"


def _expand(text):
    out = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out
