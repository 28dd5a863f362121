"""Dynamic guests on the nfv-snc-2s bundle, end to end.

Real parts: libvirt's test driver with the bundle's node devices, the
real Placement service, the real mdev backend, libvirt's domain.rng.
Only the kernel's sysfs is a stand-in (a real T4 cannot exist here).

The host: 4 cells of 8 cores x 2 threads; cell c has CPUs 8c..8c+7 and
their siblings +32; the first core of each cell (8c, 8c+32) is shared,
the other 7 cores dedicated.  The A100 is on cell 1 (socket 0), the T4
on cell 3, 4 VFs on cell 0 (17:00.2-5) and 4 on cell 2 (98:00.2-5).
"""

import json
import os
import subprocess
import sys

import pytest
from lxml import etree

from nova_slices import data
from nova_slices.cmd.main import main
from nova_slices.cmd.runtime import Runtime
from nova_slices.cpuset import parse_cpuset
from nova_slices.errors import NoFit, NovaSlicesError
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import parse_node_devices, split_node_file
from nova_slices.placement import claims
from nova_slices.placement.client import expect
from nova_slices.virt import metadata
from nova_slices.virt.schema import validate_domain_xml
from tests.fixtures.fake_sysfs import FakeSysfs
from tests.functional.conftest import make_conf

BUNDLE = data.host_bundle("nfv-snc-2s")
NFV_CONF = os.path.join(BUNDLE, "nova-slices.conf")
A100 = "0000:31:00.0"
T4 = "0000:b1:00.0"
VFS = {
    0: {f"0000:17:00.{f}" for f in range(2, 6)},
    2: {f"0000:98:00.{f}" for f in range(2, 6)},
}
DEDICATED = {"hw:cpu_policy": "dedicated"}


def cell_cpus(cell):
    first = set(range(8 * cell, 8 * cell + 8))
    return first | {c + 32 for c in first}


def shared_cpus(cell):
    return {8 * cell, 8 * cell + 32}


def dedicated_cpus(cell):
    return cell_cpus(cell) - shared_cpus(cell)


def siblings(cpu):
    return {cpu % 32, cpu % 32 + 32}


def bundle_devices():
    with open(os.path.join(BUNDLE, "node.xml")) as f:
        docs = split_node_file(f.read())
    with open(os.path.join(BUNDLE, "capabilities.xml")) as f:
        return parse_node_devices(docs, parse_capabilities(f.read()))


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """One dynamic host for the module: test driver, Placement, kernel."""
    base = tmp_path_factory.mktemp("dynamic")
    with FakeSysfs.like_host(base / "sys", bundle_devices()) as kernel:
        extra = base / "sysfs.conf"
        extra.write_text(f"[devices]\nmdev_sysfs_root = {kernel.root}\n")
        (base / "state").mkdir()
        config = [NFV_CONF, str(extra)]
        conf = make_conf(base / "state", config_files=config)
        with Runtime(conf) as rt:
            rt.driver.update_provider_tree()
            rt.kernel = kernel
            rt.config_files = config
            yield rt


@pytest.fixture
def rt(host):
    """The module's host, emptied again after each test."""
    yield host
    for view in host.driver.guests()[0]:
        host.driver.destroy(view.name)
    assert host.driver.usage().cells == ()


def spawn(rt, name, vcpus, memory_mb, specs=None, image=None, disk_gb=1):
    """Spawn and return (view, the domain element libvirt holds)."""
    view = rt.driver.spawn(name, vcpus, memory_mb, disk_gb, specs, image)
    xml = rt.host.lookup(name).XMLDesc(0)
    validate_domain_xml(xml)  # every generated domain, as libvirt has it
    return view, etree.fromstring(xml.encode())


def pins(dom):
    return {
        int(p.get("vcpu")): parse_cpuset(p.get("cpuset"))
        for p in dom.iterfind("cputune/vcpupin")
    }


def memnodes(dom):
    return {
        int(n.get("cellid")): int(n.get("nodeset"))
        for n in dom.iterfind("numatune/memnode")
    }


def guest_cells(dom):
    return [dict(c.attrib) for c in dom.iterfind("cpu/numa/cell")]


def root_allocation(rt, view):
    return view.allocations[rt.driver.providers.root.uuid]


def hostdev_pci(dom):
    return [
        "%04x:%02x:%02x.%x"
        % tuple(
            int(a.get(k), 16) for k in ("domain", "bus", "slot", "function")
        )
        for a in dom.iterfind("devices/hostdev[@type='pci']/source/address")
    ]


# -- the compute node's inventory --------------------------------------------


def test_compute_node_reports_nova_inventory(rt):
    root = rt.driver.providers.root.uuid
    inv = expect(
        rt.client.get(f"/resource_providers/{root}/inventories"), 200
    ).body["inventories"]
    st = os.statvfs(os.path.join(rt.conf.state_path, "instances"))
    assert {rc: (i["total"], i["reserved"]) for rc, i in inv.items()} == {
        "VCPU": (8, 0),
        "PCPU": (56, 0),
        "MEMORY_MB": (4 * 65536, 4096),
        "DISK_GB": (st.f_blocks * st.f_frsize // 1024**3, 0),
    }
    # Nova's initial ratios apply while the ratio options are unset
    assert inv["VCPU"]["allocation_ratio"] == 4.0
    assert inv["MEMORY_MB"]["allocation_ratio"] == 1.0
    assert inv["PCPU"]["allocation_ratio"] == 1.0


def test_host_with_slices_and_cpu_sets_is_refused(tmp_path, cli):
    mixed = tmp_path / "mixed.conf"
    mixed.write_text("[compute]\ncpu_dedicated_set = 4-63\n")
    status, out, _ = cli(
        "validate",
        "--format",
        "json",
        config=[os.path.join(data.host_bundle(), "nova-slices.conf"), mixed],
    )
    assert status == 2
    error = out["errors"][0]
    assert error["code"] == "config.mixed-host"
    assert error["key"] == "[compute] cpu_dedicated_set"
    assert "slice_spec" in error["message"]


# -- the domain XML of representative guests ---------------------------------


def test_one_cell_shared_guest(rt):
    view, dom = spawn(rt, "shared1", 2, 1024, {"hw:numa_nodes": "1"})
    (host_cell,) = memnodes(dom).values()
    floating = shared_cpus(host_cell)
    assert parse_cpuset(dom.find("vcpu").get("cpuset")) == floating
    assert dom.findtext("vcpu") == "2"
    assert pins(dom) == {0: floating, 1: floating}
    assert parse_cpuset(dom.find("cputune/emulatorpin").get("cpuset")) == (
        floating
    )
    memory = dom.find("numatune/memory")
    assert (memory.get("mode"), memory.get("nodeset")) == (
        "strict",
        str(host_cell),
    )
    assert dom.find("numatune/memnode").get("mode") == "strict"
    assert dict(dom.find("cpu/topology").attrib) == {
        "sockets": "1",
        "dies": "1",
        "cores": "2",
        "threads": "1",
    }
    assert guest_cells(dom) == [
        {"id": "0", "cpus": "0-1", "memory": "1048576", "unit": "KiB"}
    ]
    assert dom.find("memoryBacking") is None
    assert dom.find("devices/memballoon").get("model") == "none"
    assert root_allocation(rt, view) == {
        "VCPU": 2,
        "MEMORY_MB": 1024,
        "DISK_GB": 1,
    }


def test_two_cells_dedicated_with_isolated_emulator(rt):
    view, dom = spawn(
        rt,
        "pinned2",
        8,
        8192,
        {
            **DEDICATED,
            "hw:numa_nodes": "2",
            "hw:cpu_thread_policy": "require",
            "hw:emulator_threads_policy": "isolate",
        },
    )
    cells = memnodes(dom)
    assert len(set(cells.values())) == 2
    vcpu_pins = pins(dom)
    assert all(len(p) == 1 for p in vcpu_pins.values())
    pinned = [next(iter(vcpu_pins[v])) for v in range(8)]
    assert len(set(pinned)) == 8
    for vcpu, cpu in enumerate(pinned):
        assert cpu in dedicated_cpus(cells[vcpu // 4])
    # require: vCPU pairs on sibling threads of one core
    for v in range(0, 8, 2):
        assert siblings(pinned[v]) == {pinned[v], pinned[v + 1]}
    emulator = parse_cpuset(dom.find("cputune/emulatorpin").get("cpuset"))
    assert len(emulator) == 1 and not emulator & set(pinned)
    assert emulator <= dedicated_cpus(cells[0])
    assert parse_cpuset(dom.find("vcpu").get("cpuset")) == set(pinned)
    assert dict(dom.find("cpu/topology").attrib) == {
        "sockets": "2",
        "dies": "1",
        "cores": "2",
        "threads": "2",
    }
    assert [(c["id"], c["cpus"], c["memory"]) for c in guest_cells(dom)] == [
        ("0", "0-3", "4194304"),
        ("1", "4-7", "4194304"),
    ]
    # Nova's translation: 8 pinned vCPUs + 1 for the isolated emulator
    assert root_allocation(rt, view) == {
        "PCPU": 9,
        "MEMORY_MB": 8192,
        "DISK_GB": 1,
    }


def test_mixed_guest(rt):
    view, dom = spawn(
        rt,
        "mixed",
        4,
        4096,
        {"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "^0"},
    )
    (host_cell,) = memnodes(dom).values()
    vcpu_pins = pins(dom)
    assert vcpu_pins[0] == shared_cpus(host_cell)
    for v in (1, 2, 3):
        (cpu,) = vcpu_pins[v]
        assert cpu in dedicated_cpus(host_cell)
    assert root_allocation(rt, view) == {
        "VCPU": 1,
        "PCPU": 3,
        "MEMORY_MB": 4096,
        "DISK_GB": 1,
    }


def test_hugepages_1g(rt):
    view, dom = spawn(
        rt, "huge", 2, 2048, {**DEDICATED, "hw:mem_page_size": "1GB"}
    )
    page = dom.find("memoryBacking/hugepages/page")
    assert dict(page.attrib) == {
        "size": "1048576",
        "unit": "KiB",
        "nodeset": "0",
    }
    (cell,) = guest_cells(dom)
    assert cell["memAccess"] == "shared"
    (host_cell,) = memnodes(dom).values()
    assert rt.driver.usage().cell(host_cell).pages == ((1048576, 2),)


def test_hugepages_run_out_per_cell(rt):
    """8 x 1G per cell: a 9 GiB single-cell guest fits nowhere."""
    with pytest.raises(NoFit) as exc:
        rt.driver.spawn(
            "too-big",
            2,
            9216,
            1,
            {**DEDICATED, "hw:mem_page_size": "1GB"},
        )
    assert {r.code for r in exc.value.reasons} == {"numa.not-enough-pages"}
    assert rt.host.lookup("too-big") is None


def test_explicit_numa_node_pins(rt):
    _, dom = spawn(
        rt,
        "pinned-nodes",
        4,
        4096,
        {
            **DEDICATED,
            "hw:numa_nodes": "2",
            "hw:numa_node.0": "3",
            "hw:numa_node.1": "1",
        },
    )
    assert memnodes(dom) == {0: 3, 1: 1}
    for vcpu, cpuset in pins(dom).items():
        assert cpuset <= dedicated_cpus(3 if vcpu < 2 else 1)


@pytest.mark.parametrize(
    "policy, node, expected",
    [
        ("required", 0, "vf0"),
        ("required", 1, "pci.no-device-on-cell"),
        ("legacy", 2, "vf2"),
        ("legacy", 3, "pci.no-device-on-cell"),
        ("preferred", 2, "vf2"),
        ("preferred", 1, "any-vf"),
        ("socket", 1, "vf0"),
        ("socket", 3, "vf2"),
    ],
)
def test_pci_numa_policies_for_vfs(rt, policy, node, expected):
    specs = {
        "hw:numa_nodes": "1",
        "hw:numa_node.0": str(node),
        "hw:pci_numa_affinity_policy": policy,
        "pci_passthrough:alias": "vf:1",
    }
    if expected.startswith("pci."):
        with pytest.raises(NoFit) as exc:
            rt.driver.spawn("vf-guest", 2, 2048, 1, specs)
        assert [r.code for r in exc.value.reasons] == [expected]
        return
    view, dom = spawn(rt, "vf-guest", 2, 2048, specs)
    (address,) = hostdev_pci(dom)
    wanted = {
        "vf0": VFS[0],
        "vf2": VFS[2],
        "any-vf": VFS[0] | VFS[2],
    }[expected]
    assert address in wanted
    hostdev = dom.find("devices/hostdev[@type='pci']")
    assert (hostdev.get("mode"), hostdev.get("managed")) == (
        "subsystem",
        "yes",
    )
    pf = "0000:17:00.0" if address in VFS[0] else "0000:98:00.0"
    pf_provider = next(
        p.uuid
        for p in rt.driver.providers.providers
        if p.name.endswith("_" + pf.replace(":", "_").replace(".", "_"))
    )
    assert view.allocations[pf_provider] == {"CUSTOM_NIC_VF": 1}
    assert metadata.read(etree.tostring(dom, encoding="unicode")).pci == (
        address,
    )


def test_socket_policy_gives_the_gpu_to_its_socket_only(rt):
    specs = {
        **DEDICATED,
        "hw:numa_node.0": "2",
        "pci_passthrough:alias": "a100:1",  # the alias says socket
    }
    with pytest.raises(NoFit) as exc:
        rt.driver.spawn("gpu-far", 4, 4096, 1, specs)
    assert [r.code for r in exc.value.reasons] == ["pci.no-device-on-socket"]
    view, dom = spawn(
        rt, "gpu-near", 4, 4096, {**specs, "hw:numa_node.0": "0"}
    )
    assert memnodes(dom) == {0: 0}
    assert hostdev_pci(dom) == [A100]
    assert "CUSTOM_PCI_GPU_A100" in str(view.allocations)


def test_mdev_guest(rt):
    view, dom = spawn(rt, "vgpu", 2, 2048, {"resources:VGPU": "1"})
    (hostdev,) = dom.iterfind("devices/hostdev[@type='mdev']")
    uuid = hostdev.find("source/address").get("uuid")
    assert (hostdev.get("model"), hostdev.get("managed")) == (
        "vfio-pci",
        "no",
    )
    assert uuid in {m.uuid for m in rt.driver.devices.backend.list()}
    record = metadata.read(etree.tostring(dom, encoding="unicode"))
    assert record.mdevs == ((uuid, "nvidia-222", T4),)
    vgpu_provider = next(
        p.uuid
        for p in rt.driver.providers.providers
        if "VGPU" in p.inventories
    )
    assert view.allocations[vgpu_provider] == {"VGPU": 1}
    assert view.devices["mdevs"] == [uuid]


# -- failures release everything ------------------------------------------


def test_failure_after_the_claim_releases_it(rt):
    """The kernel refuses a vGPU: no allocation, domain or usage left.

    Two vGPUs, so that at least one must be created whatever free mdev an
    earlier test left behind."""
    rt.kernel.set_available(T4, "nvidia-222", 0)
    try:
        with pytest.raises(NovaSlicesError) as exc:
            rt.driver.spawn(
                "no-vgpu", 2, 2048, 1, {**DEDICATED, "resources:VGPU": "2"}
            )
    finally:
        rt.kernel.set_available(T4, "nvidia-222", 16)
    assert exc.value.code == "binding.mdev-exhausted"
    assert rt.host.lookup("no-vgpu") is None
    assert rt.driver.allocations_by_consumer() == {}
    assert rt.driver.usage().cells == ()


def test_unknown_alias_and_root_override_are_input_errors(rt):
    with pytest.raises(NovaSlicesError) as exc:
        rt.driver.spawn("x", 2, 1024, 1, {"pci_passthrough:alias": "nope:1"})
    assert (exc.value.code, exc.value.exit_status) == (
        "request.pci-alias-unknown",
        2,
    )
    with pytest.raises(NovaSlicesError) as exc:
        rt.driver.spawn("x", 2, 1024, 1, {"resources:PCPU": "2"})
    assert (exc.value.code, exc.value.exit_status) == (
        "request.dynamic-root-resources",
        2,
    )
    assert rt.driver.allocations_by_consumer() == {}


# -- restart and cross-checks ------------------------------------------------


def run_cli(rt, capsys, *argv):
    """``nova-slices ... --format json`` on the module's host."""
    args = []
    for path in rt.config_files:
        args += ["--config-file", path]
    capsys.readouterr()
    status = main(
        [*args, "--state-path", rt.conf.state_path, *argv, "--format", "json"]
    )
    out, err = capsys.readouterr()
    assert status == 0, (out, err)
    return json.loads(out)


def spawn_mix(rt):
    spawn(rt, "a", 4, 4096, {**DEDICATED, "hw:numa_nodes": "2"})
    spawn(rt, "b", 2, 2048, {**DEDICATED, "hw:mem_page_size": "1GB"})
    spawn(
        rt,
        "c",
        2,
        2048,
        {"hw:numa_nodes": "1", "pci_passthrough:alias": "vf:1"},
    )
    spawn(rt, "d", 2, 1024, {"resources:VGPU": "1"})
    spawn(rt, "e", 1, 512)


def test_restart_rebuilds_the_same_usage(rt):
    spawn_mix(rt)
    before = rt.driver.usage()
    assert before.cells and before.pci_devices_in_use
    with Runtime(rt.conf) as fresh:  # a new connection, as after a restart
        assert fresh.driver.usage() == before
        views, problems = fresh.driver.guests()
    assert problems == []
    assert sorted(v.name for v in views) == ["a", "b", "c", "d", "e"]
    # and a process started afresh says the same, in the --usage-json
    # format: nothing but libvirt's domains carries the usage over
    args = []
    for path in rt.config_files:
        args += ["--config-file", path]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nova_slices.cmd.main",
            *args,
            "--state-path",
            rt.conf.state_path,
            "usage",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == before.to_dict()


def test_list_reports_disagreements_with_placement(rt, capsys):
    spawn_mix(rt)
    victim = rt.host.lookup("b")
    uuid = metadata.read(victim.XMLDesc(0)).instance_uuid
    claims.release(rt.client, uuid)
    stray = "11111111-2222-3333-4444-555555555555"
    root = rt.driver.providers.root.uuid
    expect(
        rt.client.put(
            f"/allocations/{stray}",
            {
                "allocations": {root: {"resources": {"PCPU": 2}}},
                "project_id": "p",
                "user_id": "u",
                "consumer_generation": None,
            },
        ),
        204,
    )
    try:
        out = run_cli(rt, capsys, "list")
    finally:
        claims.release(rt.client, stray)
    codes = {(d["code"], d["instance_uuid"]) for d in out["discrepancies"]}
    assert codes == {
        ("guest.no-allocation", uuid),
        ("allocation.no-guest", stray),
    }
