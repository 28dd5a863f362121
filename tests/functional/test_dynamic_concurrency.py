"""Twenty ``nova-slices spawn`` processes at once on a host without slices.

Each is a real process with its own libvirt connection and Placement
client.  Afterwards the domain XML itself (not our metadata) is read back
to show that no pCPU, hugepage or device went to two guests, and every
Placement allocation is matched by a domain and by what it pins.
"""

import collections

from lxml import etree

from nova_slices.cmd.runtime import Runtime
from nova_slices.cpuset import parse_cpuset
from nova_slices.virt import metadata
from nova_slices.virt.schema import validate_domain_xml
from tests.fixtures.fake_sysfs import FakeSysfs
from tests.fixtures.scheduling import EXCLUSIVE
from tests.functional.conftest import make_conf
from tests.functional.test_concurrency import spawn_processes
from tests.functional.test_dynamic_guests import NFV_CONF, bundle_devices

# process bursts: see tests/fixtures/scheduling.py
pytestmark = EXCLUSIVE

DEDICATED = ("--extra-spec", "hw:cpu_policy=dedicated")
#: (vcpus, memory MiB, extra specs); 20 guests asking for more pCPUs,
#: 1G pages and devices than the host has, so some must be refused
GUESTS = (
    [
        (
            4,
            4096,
            DEDICATED
            + ("--extra-spec", "hw:numa_nodes=2")
            + ("--extra-spec", "hw:emulator_threads_policy=isolate"),
        )
    ]
    * 6
    + [(2, 6144, DEDICATED + ("--extra-spec", "hw:mem_page_size=1GB"))] * 4
    + [(2, 2048, ("--extra-spec", "pci_passthrough:alias=vf:1"))] * 4
    + [(4, 4096, DEDICATED + ("--extra-spec", "pci_passthrough:alias=a100:1"))]
    * 2
    + [(2, 2048, ("--extra-spec", "resources:VGPU=1"))] * 2
    + [(8, 8192, DEDICATED + ("--extra-spec", "hw:numa_nodes=1"))] * 2
)
REFUSALS = {
    "fit.no-fit",
    "placement.no-candidates",
    "placement.lost-race",
}


def spawn_all(state_path, config):
    return spawn_processes(
        state_path,
        config,
        [
            ["--vcpus", str(vcpus), "--memory-mb", str(memory), *specs]
            for vcpus, memory, specs in GUESTS
        ],
    )


def exclusive_cpus(dom):
    """Host CPUs this domain holds alone: its 1:1 vCPU pins, and an
    emulator pin that none of its vCPUs shares (isolate)."""
    pins = [
        parse_cpuset(p.get("cpuset")) for p in dom.iterfind("cputune/vcpupin")
    ]
    held = [next(iter(p)) for p in pins if len(p) == 1]
    emulator = dom.find("cputune/emulatorpin")
    if emulator is not None:
        cpus = parse_cpuset(emulator.get("cpuset"))
        if len(cpus) == 1 and held and not cpus & set(held):
            held += list(cpus)
    return held


def huge_pages(dom):
    """{host cell: 1G pages} from <hugepages> and <numatune>."""
    page = dom.find("memoryBacking/hugepages/page")
    if page is None:
        return {}
    size = int(page.get("size"))
    host = {
        int(n.get("cellid")): int(n.get("nodeset"))
        for n in dom.iterfind("numatune/memnode")
    }
    out = collections.Counter()
    for cell in dom.iterfind("cpu/numa/cell"):
        out[host[int(cell.get("id"))]] += int(cell.get("memory")) // size
    return out


def test_twenty_concurrent_spawns_share_nothing(tmp_path):
    with FakeSysfs.like_host(tmp_path / "sys", bundle_devices()) as kernel:
        extra = tmp_path / "sysfs.conf"
        extra.write_text(f"[devices]\nmdev_sysfs_root = {kernel.root}\n")
        config = [NFV_CONF, str(extra)]
        state = tmp_path / "state"
        state.mkdir()
        results = spawn_all(state, config)
        with Runtime(make_conf(state, config_files=config)) as rt:
            domains = {d.name(): d.XMLDesc(0) for d in rt.host.domains()}
            by_consumer = rt.driver.allocations_by_consumer()
            views, problems = rt.driver.guests()
            root = rt.driver.providers.root.uuid

    won = {f"g{i}" for i, (status, _) in enumerate(results) if status == 0}
    for status, out in results:
        assert status in (0, 1), out
        if status == 1:
            assert out["errors"][0]["code"] in REFUSALS, out
    assert won == set(domains)
    assert 0 < len(won) < len(GUESTS)

    cpus, pages, devices = [], collections.Counter(), []
    records = {}
    for name, xml in domains.items():
        validate_domain_xml(xml)
        dom = etree.fromstring(xml.encode())
        held = exclusive_cpus(dom)
        cpus += held
        pages.update(huge_pages(dom))
        devices += [
            etree.tostring(a) for a in dom.iterfind("devices/hostdev/source/")
        ]
        record = metadata.read(xml)
        records[record.instance_uuid] = (name, len(held))
    assert len(cpus) == len(set(cpus)), "a pCPU was pinned twice"
    assert all(n <= 8 for n in pages.values()), pages  # 8 x 1G per cell
    assert len(devices) == len(set(devices)), "a device was given twice"
    # one A100: at most one of the two GPU guests won it.  Both may lose
    # when the guests that ran first took every pCPU of the A100's cell,
    # so each loser must have been refused, never given a second A100.
    a100 = [i for i, (_, _, specs) in enumerate(GUESTS) if "a100" in specs[-1]]
    given = sum(1 for d in devices if b'bus="0x31"' in d)
    assert given == sum(1 for i in a100 if f"g{i}" in won) <= 1

    # every allocation has a domain, and its PCPU is what the domain pins
    assert set(by_consumer) == set(records)
    for consumer, allocations in by_consumer.items():
        name, held = records[consumer]
        assert allocations[root].get("PCPU", 0) == held, name
    assert problems == []
    assert sorted(v.name for v in views) == sorted(won)
