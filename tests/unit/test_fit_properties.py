"""Properties of the NUMA fitter on random small hosts.

(a) Every placement the fitter returns passes the independent checker
    (tests/fitcheck.py), and every rejection carries at least one reason.
(b) The fitter says "no fit" exactly when a brute force over every
    injective assignment of guest cells to host cells, written from
    Nova's documented semantics (tests/fitoracle.py: its own per-cell
    counting of free CPUs, cores and pages, and PCI by trying every
    choice of devices), finds none.
(c) Claiming a placement and fitting again never hands out a CPU, a page
    or a device twice; releasing gives every cell its usage back.

Hosts have 1-6 cells of 0-8 CPUs (0: memory-only), with or without SMT,
random page pools, sockets, CPU sets, reserved pages, usage and PCI
devices (plain, and a PF with VFs).  Requests go through build_request.
"""

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nova_slices.errors import RequestError
from nova_slices.fit.claims import claim, release
from nova_slices.fit.fitter import fit
from nova_slices.fit.model import CellUsage, Placement, Rejection, Usage
from nova_slices.fit.pci import parse_aliases
from nova_slices.host.devices import (
    TYPE_PCI,
    TYPE_PF,
    TYPE_VF,
    HostDevices,
    PciDevice,
)
from nova_slices.host.restrictions import HostRestrictions
from nova_slices.request.build import build_request
from tests.fitcheck import (
    check_placement,
    make_cell,
    make_host,
    pools_of,
    smt_groups,
)
from tests.fitoracle import brute_force

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
POLICIES = ["required", "legacy", "preferred", "socket"]
ALIASES = {
    "a": {"vendor_id": "8086", "product_id": "1111"},
    "b": {"vendor_id": "8086", "product_id": "2222"},
    "pf": {"vendor_id": "15b3", "product_id": "aaaa", "device_type": TYPE_PF},
    "vf": {"vendor_id": "15b3", "product_id": "bbbb", "device_type": TYPE_VF},
    # the devices of a under another name: the requests compete for them
    "x": {"vendor_id": "8086", "product_id": "1111"},
}


# -- generators ---------------------------------------------------------------


@st.composite
def hosts(draw):
    cells, first = [], 0
    for cid in range(draw(st.integers(1, 6))):
        threads = draw(st.sampled_from([1, 2, 2]))
        if draw(st.integers(0, 7)) == 0:
            cores = 0  # a memory-only cell
        else:
            cores = draw(st.integers(1, 8 // threads))
        huge = []
        if draw(st.integers(0, 3)):
            huge.append((2048, draw(st.sampled_from([0, 256, 1024, 2048]))))
        if draw(st.booleans()):
            huge.append((1048576, draw(st.integers(0, 4))))
        cells.append(
            make_cell(
                cid,
                smt_groups(first, cores, threads),
                socket=draw(st.sampled_from([0, 0, 1, 1, None])),
                small_mb=draw(st.sampled_from([1024, 2048, 4096, 8192])),
                huge=tuple(huge),
                pools=draw(st.sampled_from([True] * 6 + [False])),
            )
        )
        first += cores * threads
    return make_host(*cells)


@st.composite
def restrictions_for(draw, topology):
    cpus = sorted(topology.cpu_ids)
    mode = draw(
        st.sampled_from(["none"] * 4 + ["both"] * 2 + ["ded", "shared"])
    )
    ded = shared = None
    if mode == "both":
        role = {c: draw(st.sampled_from("ddssn")) for c in cpus}
        ded = frozenset(c for c in cpus if role[c] == "d")
        shared = frozenset(c for c in cpus if role[c] == "s")
    elif mode == "ded":
        ded = frozenset(c for c in cpus if draw(st.booleans()))
    elif mode == "shared":
        shared = frozenset(c for c in cpus if draw(st.booleans()))
    reserved = {}
    for cell in topology.cells:
        for pool in cell.pages:
            if pool.total and draw(st.integers(0, 4)) == 0:
                reserved[(cell.id, pool.size_kb)] = draw(
                    st.sampled_from([1, pool.total // 2, pool.total])
                )
    if mode == "none" and not reserved:
        return None
    return HostRestrictions(ded, shared, 0, tuple(sorted(reserved.items())))


@st.composite
def devices_for(draw, topology):
    nodes = [c.id for c in topology.cells] + [None]
    out = []

    def place():
        node = draw(st.sampled_from(nodes))
        socket = None if node is None else topology.socket_of_cell(node)
        return node, socket

    for i in range(draw(st.sampled_from([0, 1, 2, 3, 4, 5, 5, 6]))):
        node, socket = place()
        out.append(
            PciDevice(
                f"0000:{i + 1:02x}:00.0",
                "8086",
                draw(st.sampled_from(["1111", "1111", "2222"])),
                numa_node=node,
                socket=socket,
                dev_type=TYPE_PCI,
            )
        )
    if draw(st.booleans()):
        node, socket = place()
        pf = "0000:80:00.0"
        vfs = ("0000:80:00.1", "0000:80:00.2")
        out.append(
            PciDevice(
                pf,
                "15b3",
                "aaaa",
                numa_node=node,
                socket=socket,
                dev_type=TYPE_PF,
                vf_addresses=vfs,
            )
        )
        out.extend(
            PciDevice(
                vf,
                "15b3",
                "bbbb",
                numa_node=node,
                socket=socket,
                dev_type=TYPE_VF,
                parent_address=pf,
            )
            for vf in vfs
        )
    return HostDevices(tuple(sorted(out, key=lambda d: d.address)))


@st.composite
def usage_for(draw, topology, restrictions, devices):
    cells = []
    for cell in topology.cells:
        ded, _ = pools_of(cell, restrictions)
        pinned = frozenset(
            c for c in sorted(ded) if draw(st.integers(0, 3)) == 0
        )
        pages = []
        for pool in cell.pages:
            room = pool.total - (
                restrictions.reserved(cell.id, pool.size_kb)
                if restrictions
                else 0
            )
            used = draw(st.sampled_from([0, 0, 0, 1, room // 2, room]))
            used = min(used, room)
            if used:
                pages.append((pool.size_kb, used))
        mem = draw(st.sampled_from([0, 0, cell.memory_kb // 2048]))
        u = CellUsage(pinned, draw(st.integers(0, 3)), mem, tuple(pages))
        if u != CellUsage():
            cells.append((cell.id, u))
    in_use = frozenset(
        d.address for d in devices.pci if draw(st.integers(0, 5)) == 0
    )
    return Usage(tuple(cells), in_use)


@st.composite
def requests_for(draw, topology):
    nodes = draw(st.sampled_from([1, 1, 2, 2, 3, 4]))
    specs = {"hw:numa_nodes": str(nodes)}
    policy = draw(st.sampled_from([None, "shared", "dedicated", "mixed"]))
    if draw(st.booleans()) and nodes > 1:
        # asymmetric cells, given explicitly
        vcpus = draw(st.integers(nodes, 2 * nodes + 1))
        owner = list(range(nodes)) + [
            draw(st.integers(0, nodes - 1)) for _ in range(vcpus - nodes)
        ]
        owner = draw(st.permutations(owner))
        memory = 0
        for n in range(nodes):
            specs[f"hw:numa_cpus.{n}"] = ",".join(
                str(v) for v in range(vcpus) if owner[v] == n
            )
            mb = draw(st.sampled_from([256, 512, 512, 1000, 1024, 2048]))
            specs[f"hw:numa_mem.{n}"] = str(mb)
            memory += mb
    else:
        vcpus = nodes * draw(st.sampled_from([1, 1, 2, 2, 3]))
        memory = nodes * draw(
            st.sampled_from([256, 512, 512, 1000, 1024, 2048])
        )
    if policy:
        specs["hw:cpu_policy"] = policy
    if policy == "mixed":
        assume(vcpus > 1)
        mask = draw(
            st.sets(st.integers(0, vcpus - 1), min_size=1, max_size=vcpus - 1)
        )
        specs["hw:cpu_dedicated_mask"] = ",".join(map(str, sorted(mask)))
    if policy in ("dedicated", "mixed"):
        threads = draw(st.sampled_from([None, "prefer", "isolate", "require"]))
        if threads:
            specs["hw:cpu_thread_policy"] = threads
        emulator = draw(st.sampled_from([None, "share", "isolate"]))
        if emulator:
            specs["hw:emulator_threads_policy"] = emulator
    page = draw(
        st.sampled_from(
            [None] * 6 + ["small", "large", "any", 4, 2048, 1048576]
        )
    )
    if page is not None:
        specs["hw:mem_page_size"] = str(page)
    for n in range(nodes):
        if draw(st.integers(0, 4)) == 0:
            specs[f"hw:numa_node.{n}"] = str(
                draw(st.integers(0, len(topology.cells)))
            )
    alias = draw(
        st.sampled_from(
            [None] * 7
            + ["a:1", "a:2", "b:1", "a:1,b:1", "x:1,a:1", "pf:1", "vf:2"]
        )
    )
    if alias:
        specs["pci_passthrough:alias"] = alias
        pci_policy = draw(st.sampled_from([None] + POLICIES))
        if pci_policy:
            specs["hw:pci_numa_affinity_policy"] = pci_policy
    try:
        return build_request(vcpus, memory, specs)
    except RequestError:
        assume(False)


@st.composite
def scenarios(draw):
    topology = draw(hosts())
    restrictions = draw(restrictions_for(topology))
    devices = draw(devices_for(topology))
    usage = draw(usage_for(topology, restrictions, devices))
    raw = []
    for name, spec in ALIASES.items():
        policy = draw(st.sampled_from([None] + POLICIES))
        raw.append(
            '{"name": "%s", %s%s}'
            % (
                name,
                ", ".join(f'"{k}": "{v}"' for k, v in spec.items()),
                f', "numa_policy": "{policy}"' if policy else "",
            )
        )
    aliases = parse_aliases(raw)
    request = draw(requests_for(topology))
    assume(request.cells)
    return topology, restrictions, usage, devices, aliases, request


# -- properties ---------------------------------------------------------------


def _cpus(placement):
    return {
        p
        for c in placement.cells
        for p in (
            {x for _, x in c.cpu_pinning} | c.reserved_cpus | c.emulator_cpus
        )
    }


@SETTINGS
@given(scenarios(), st.booleans())
def test_fit_is_valid_and_no_fit_agrees_with_brute_force(scenario, pack):
    topology, restrictions, usage, devices, aliases, request = scenario
    got = fit(topology, request, usage, restrictions, devices, aliases, pack)
    truth = brute_force(
        topology, request, usage, restrictions, devices, aliases
    )
    if isinstance(got, Placement):
        assert (
            check_placement(
                topology, request, got, usage, restrictions, devices, aliases
            )
            == []
        )
        assert truth is not None, "a valid fit the brute force missed"
    else:
        assert isinstance(got, Rejection)
        assert got.reasons, "a rejection must say why"
        assert all(r.code.startswith(("numa.", "pci.")) for r in got.reasons)
        assert truth is None, (
            f"fitter: no fit {[r.code for r in got.reasons]}; "
            f"brute force: host cells {truth}"
        )


@SETTINGS
@given(scenarios())
def test_claim_then_fit_again_never_reuses_anything(scenario):
    topology, restrictions, usage, devices, aliases, request = scenario
    first = fit(topology, request, usage, restrictions, devices, aliases)
    assume(isinstance(first, Placement))
    after = claim(topology, usage, first, restrictions)
    for cell in topology.cells:
        assert release(topology, after, first).cell(cell.id) == usage.cell(
            cell.id
        )
    second = fit(topology, request, after, restrictions, devices, aliases)
    if isinstance(second, Rejection):
        assert second.reasons
        return
    assert (
        check_placement(
            topology, request, second, after, restrictions, devices, aliases
        )
        == []
    )
    assert not _cpus(first) & _cpus(second)
    assert not set(first.pci_devices) & set(second.pci_devices)
    both = claim(topology, after, second, restrictions)
    for cell in topology.cells:
        for size, used in both.cell(cell.id).pages:
            if size == min(p.size_kb for p in cell.pages):
                continue  # floating guests may overcommit small pages
            reserved = (
                restrictions.reserved(cell.id, size) if restrictions else 0
            )
            assert used <= cell.pool(size).total - reserved
