"""The slice planner of ``generate-slices``, on real host data.

Hosts: the shipped bundles (capabilities through the parser, node
devices through a real ``test:///`` connection, the bundle's own
configuration for what it already gives to mdevs), hostgen's many-cell
machines with GPUs placed on several cells (node files parsed like
libvirt's), and libvirt's own sample capabilities and devices.  Expected
trees are written out by hand from the hosts' numbers; every plan is
also checked with tests/slicecheck.py (no two slices that can run at once
share a GPU, a pinned pCPU or pages; every child inside its parent) and
by the slice tree's own shape rules.
"""

import pathlib

import libvirt
import pytest

from nova_slices import conf as conf_mod
from nova_slices.cmd.generate import configured_taken
from nova_slices.cpuset import format_cpuset
from nova_slices.errors import NovaSlicesError
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import parse_node_devices, split_node_file
from nova_slices.slices import generate
from nova_slices.slices.generate_options import parse_options
from nova_slices.slices.spec import SliceSpec
from nova_slices.slices.tree import build_tree
from tests import hostgen, slicecheck

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "data" / "libvirt-samples"
G1, M2 = 1024 * 1024, 2048


def bundle(name):
    """(topology, devices, taken) of a shipped bundle, as configured."""
    directory = ROOT / "etc" / "hosts" / name
    topology = parse_capabilities((directory / "capabilities.xml").read_text())
    conn = libvirt.open(f"test://{directory / 'node.xml'}")
    try:
        docs = [d.XMLDesc() for d in conn.listAllDevices()]
    finally:
        conn.close()
    devices = parse_node_devices(docs, topology)
    conf = conf_mod.make_conf(
        ["--config-file", str(directory / "nova-slices.conf")]
    )
    return topology, devices, configured_taken(conf, topology, devices)[1]


def synthetic(builder, gpu_cells):
    """A hostgen machine with one A100 per entry of ``gpu_cells``."""
    topology = parse_capabilities(hostgen.BUILDERS[builder]())
    node = hostgen.node_xml(hostgen.gpus_on(gpu_cells))
    return (
        topology,
        parse_node_devices(split_node_file(node), topology),
        generate.Taken(),
    )


def sample(caps, device_files=(), gpus=()):
    """A libvirt sample host with its sample devices and A100s on
    ``gpus`` cells."""
    topology = parse_capabilities((SAMPLES / caps).read_text())
    docs = [(SAMPLES / f).read_text() for f in device_files]
    docs += split_node_file(hostgen.node_xml(hostgen.gpus_on(gpus)))
    return topology, parse_node_devices(docs, topology), generate.Taken()


HOSTS = {
    "gpu8-2s": lambda: bundle("gpu8-2s"),
    "nfv-snc-2s": lambda: bundle("nfv-snc-2s"),
    "amd-16-cells": lambda: synthetic(
        "amd_l3_as_numa_2s", [1, 2, 2, 9, 12, 12]
    ),
    "intel-snc": lambda: synthetic("intel_snc_2s", [0, 1, 2, 3]),
    "gb200-34-cells": lambda: synthetic("gb200_34", [0, 0, 1, 1]),
    "hbm-flat": lambda: synthetic("hbm_flat", [0, 1]),
    "512-threads-uneven": lambda: synthetic(
        "two_socket_512_threads", [0, 1, 2, 3, 4, 5, 6, 7, 7]
    ),
    "vircaps-basic": lambda: sample(
        "vircaps-x86_64-basic.xml", gpus=[0, 0, 1, 1, 2, 2, 3, 3]
    ),
    "vircaps-hmat": lambda: sample("vircaps-x86_64-hmat.xml", gpus=[0]),
}


def plan_of(host, **flags):
    topology, devices, taken = HOSTS[host]()
    return generate.plan(topology, devices, parse_options(**flags), taken)


def summary(plan):
    """One line per slice: name, parent (- for none), class, vCPUs,
    memory in GiB, host cells."""
    return [
        f"{s.name} {s.parent or '-'} {s.resource_class} {s.vcpus} "
        f"{s.memory_mib / 1024:g} {format_cpuset(s.host_cells)}"
        for s in plan.slices
    ]


def rows(text):
    """The expected lines of :func:`summary`, written as a table."""
    return [" ".join(line.split()) for line in text.strip().splitlines()]


def checked(plan):
    """The plan in tests/slicecheck.py's terms."""
    return {
        s.name: {
            "parent": s.parent,
            "pci": set(s.gpus),
            "pinned": set(s.pinned_cpus),
            "emulator": set(s.emulator_cpus),
            "pages": {
                (c.host_cell, plan.page_size_kb): c.pages for c in s.cells
            },
        }
        for s in plan.slices
    }


def pools(topology):
    return {
        (cell.id, pool.size_kb): pool.total
        for cell in topology.cells
        for pool in cell.pages
    }


# -- the shipped bundles ------------------------------------------------------

GPU8 = rows("""
host       -       CUSTOM_SLICE_8_GPU_V1 112 896 0-3
socket0    host    CUSTOM_SLICE_4_GPU_V1  56 448 0-1
cell0      socket0 CUSTOM_SLICE_2_GPU_V1  28 224 0
cell0-gpu0 cell0   CUSTOM_SLICE_1_GPU_V1  14 112 0
cell0-gpu1 cell0   CUSTOM_SLICE_1_GPU_V1  14 112 0
cell1      socket0 CUSTOM_SLICE_2_GPU_V1  28 224 1
cell1-gpu0 cell1   CUSTOM_SLICE_1_GPU_V1  14 112 1
cell1-gpu1 cell1   CUSTOM_SLICE_1_GPU_V1  14 112 1
socket1    host    CUSTOM_SLICE_4_GPU_V1  56 448 2-3
cell2      socket1 CUSTOM_SLICE_2_GPU_V1  28 224 2
cell2-gpu0 cell2   CUSTOM_SLICE_1_GPU_V1  14 112 2
cell2-gpu1 cell2   CUSTOM_SLICE_1_GPU_V1  14 112 2
cell3      socket1 CUSTOM_SLICE_2_GPU_V1  28 224 3
cell3-gpu0 cell3   CUSTOM_SLICE_1_GPU_V1  14 112 3
cell3-gpu1 cell3   CUSTOM_SLICE_1_GPU_V1  14 112 3
""")


def test_gpu8_2s_default_tree():
    # 16 cores x 2 threads per cell, 2 A100s per cell, 224 x 1G pages
    # per cell: 7 cores and 112 GiB per GPU; the T4 stays with its vGPUs
    plan = plan_of("gpu8-2s")
    assert summary(plan) == GPU8
    assert plan.page_size_kb == G1 and not plan.base_pages
    assert plan.notes == (
        "0000:86:00.0 (10de:1eb8) stays with [mdev_nvidia-222] for mdevs; "
        "--gpu 0000:86:00.0 would make it a slice GPU",
    )


def test_gpu8_2s_cpus_are_the_shipped_templates():
    # the shipped 1_1/1_2 pin cores 1-7 and 9-15 with their siblings and
    # run emulator threads on cores 0 and 8: the default reproduces them
    by_name = {s.name: s for s in plan_of("gpu8-2s").slices}
    gpu0, gpu1 = by_name["cell0-gpu0"], by_name["cell0-gpu1"]
    assert gpu0.cells[0].cores == tuple((c, c + 64) for c in range(1, 8))
    assert gpu1.cells[0].cores == tuple((c, c + 64) for c in range(9, 16))
    assert gpu0.gpus == ("0000:17:00.0",) and gpu1.gpus == ("0000:31:00.0",)
    assert gpu0.emulator_cpus == gpu1.emulator_cpus == {0, 8, 64, 72}
    assert by_name["host"].guest_sockets == 2
    assert by_name["socket0"].emulator_cpus == {0, 8, 16, 24, 64, 72, 80, 88}
    assert plan_of("gpu8-2s").host_cpus == {
        c + t for c in range(0, 64, 8) for t in (0, 64)
    }


def test_nfv_snc_2s_one_gpu():
    # the A100 on cell 1 is the only GPU (the T4 keeps its vGPUs): its
    # slice takes cell 1's 7 unkept cores and 8 x 1G pages; the host
    # slice every cell's
    plan = plan_of("nfv-snc-2s")
    assert summary(plan) == rows("""
        host       -    CUSTOM_SLICE_1_GPU_56C_32G_V1 56 32 0-3
        cell1-gpu0 host CUSTOM_SLICE_1_GPU_14C_8G_V1  14  8 1
    """)
    assert plan.gpus[0].address == "0000:31:00.0"
    # 2M pages: 1024 per cell
    two_m = plan_of("nfv-snc-2s", page_size="2M")
    assert [s.memory_mib for s in two_m.slices] == [8192, 2048]


# -- many-cell machines and libvirt's samples ------------------------------


MANY = {
    # 16 cells of 8 cores x 2 threads, 48 x 1G each; sockets of 8 cells.
    # cell 1 (one GPU): 7 cores; cells 2 and 12 (two GPUs): 3 cores each
    # after a kept core per GPU; the sockets also hold their GPU-less
    # cells (8 - 1 kept cores, 48 GiB each): 14 + 12 + 6 x 14 = 110
    "amd-16-cells": """
        host        -       CUSTOM_SLICE_6_GPU_V1         220 768 0-15
        socket0     host    CUSTOM_SLICE_3_GPU_V1         110 384 0-7
        cell1-gpu0  socket0 CUSTOM_SLICE_1_GPU_14C_48G_V1  14  48 1
        cell2       socket0 CUSTOM_SLICE_2_GPU_V1          12  48 2
        cell2-gpu0  cell2   CUSTOM_SLICE_1_GPU_6C_24G_V1    6  24 2
        cell2-gpu1  cell2   CUSTOM_SLICE_1_GPU_6C_24G_V1    6  24 2
        socket1     host    CUSTOM_SLICE_3_GPU_V1         110 384 8-15
        cell9-gpu0  socket1 CUSTOM_SLICE_1_GPU_14C_48G_V1  14  48 9
        cell12      socket1 CUSTOM_SLICE_2_GPU_V1          12  48 12
        cell12-gpu0 cell12  CUSTOM_SLICE_1_GPU_6C_24G_V1    6  24 12
        cell12-gpu1 cell12  CUSTOM_SLICE_1_GPU_6C_24G_V1    6  24 12
    """,
    # 28 cores x 2 per cell, 200 x 1G: one GPU per cell, 27 cores each
    "intel-snc": """
        host       -       CUSTOM_SLICE_4_GPU_V1 216 800 0-3
        socket0    host    CUSTOM_SLICE_2_GPU_V1 108 400 0-1
        cell0-gpu0 socket0 CUSTOM_SLICE_1_GPU_V1  54 200 0
        cell1-gpu0 socket0 CUSTOM_SLICE_1_GPU_V1  54 200 1
        socket1    host    CUSTOM_SLICE_2_GPU_V1 108 400 2-3
        cell2-gpu0 socket1 CUSTOM_SLICE_1_GPU_V1  54 200 2
        cell3-gpu0 socket1 CUSTOM_SLICE_1_GPU_V1  54 200 3
    """,
    # Grace cells: 72 cores, no SMT, 256 x 512M pages (the largest);
    # a socket is one cell, so the socket level is left out
    "gb200-34-cells": """
        host       -     CUSTOM_SLICE_4_GPU_V1 140 256 0-1
        cell0      host  CUSTOM_SLICE_2_GPU_V1  70 128 0
        cell0-gpu0 cell0 CUSTOM_SLICE_1_GPU_V1  35  64 0
        cell0-gpu1 cell0 CUSTOM_SLICE_1_GPU_V1  35  64 0
        cell1      host  CUSTOM_SLICE_2_GPU_V1  70 128 1
        cell1-gpu0 cell1 CUSTOM_SLICE_1_GPU_V1  35  64 1
        cell1-gpu1 cell1 CUSTOM_SLICE_1_GPU_V1  35  64 1
    """,
    # HBM cells 2-3 have no CPUs: left out
    "hbm-flat": """
        host       -    CUSTOM_SLICE_2_GPU_V1 220 512 0-1
        cell0-gpu0 host CUSTOM_SLICE_1_GPU_V1 110 256 0
        cell1-gpu0 host CUSTOM_SLICE_1_GPU_V1 110 256 1
    """,
    # libvirt's sample: 4 cells of 4 CPUs (no SMT), one socket each,
    # 1G pools of 6144, 8192, 10240 and 12288 pages; 2 GPUs per cell get
    # one CPU each (the other two kept) and half the pool: four sizes
    "vircaps-basic": """
        host       -     CUSTOM_SLICE_8_GPU_V1             8 36864 0-3
        cell0      host  CUSTOM_SLICE_2_GPU_2C_6144G_V1    2  6144 0
        cell0-gpu0 cell0 CUSTOM_SLICE_1_GPU_1C_3072G_V1    1  3072 0
        cell0-gpu1 cell0 CUSTOM_SLICE_1_GPU_1C_3072G_V1    1  3072 0
        cell1      host  CUSTOM_SLICE_2_GPU_2C_8192G_V1    2  8192 1
        cell1-gpu0 cell1 CUSTOM_SLICE_1_GPU_1C_4096G_V1    1  4096 1
        cell1-gpu1 cell1 CUSTOM_SLICE_1_GPU_1C_4096G_V1    1  4096 1
        cell2      host  CUSTOM_SLICE_2_GPU_2C_10240G_V1   2 10240 2
        cell2-gpu0 cell2 CUSTOM_SLICE_1_GPU_1C_5120G_V1    1  5120 2
        cell2-gpu1 cell2 CUSTOM_SLICE_1_GPU_1C_5120G_V1    1  5120 2
        cell3      host  CUSTOM_SLICE_2_GPU_2C_12288G_V1   2 12288 3
        cell3-gpu0 cell3 CUSTOM_SLICE_1_GPU_1C_6144G_V1    1  6144 3
        cell3-gpu1 cell3 CUSTOM_SLICE_1_GPU_1C_6144G_V1    1  6144 3
    """,
    # one CPU cell of 24 CPUs without socket ids, one memory-only cell:
    # a single GPU's slice is the host's
    "vircaps-hmat": """
        cell0-gpu0 - CUSTOM_SLICE_1_GPU_V1 23 6144 0
    """,
}


@pytest.mark.parametrize("host", sorted(MANY))
def test_many_cell_hosts(host):
    assert summary(plan_of(host)) == rows(MANY[host])


def test_uneven_sockets_need_shape_classes():
    # socket0 holds 4 one-GPU cells, socket1 3 and a cell with 2 GPUs:
    # the one-GPU slices of 62 vCPUs sit under a 4-GPU and a 5-GPU class,
    # which one class cannot (its slices share their ancestor classes)
    classes = {
        s.name: s.resource_class for s in plan_of("512-threads-uneven").slices
    }
    assert classes["cell0-gpu0"] == "CUSTOM_SLICE_1_GPU_62C_160G_V1"
    assert classes["cell4-gpu0"] == "CUSTOM_SLICE_1_GPU_62C_160G_SHAPE2_V1"
    assert classes["cell7-gpu0"] == "CUSTOM_SLICE_1_GPU_30C_80G_V1"
    assert (classes["socket0"], classes["socket1"]) == (
        "CUSTOM_SLICE_4_GPU_V1",
        "CUSTOM_SLICE_5_GPU_V1",
    )


def test_memory_only_cells_are_noted():
    assert plan_of("gb200-34-cells").notes == (
        "cell(s) 2-33 have no CPUs: no slice takes their memory",
    )
    assert plan_of("gb200-34-cells").page_size_kb == 512 * 1024


FLAG_ROWS = {
    "none": {},
    "reserved-cores": {"reserved_cores": "2"},
    "reserved-cpus": {"reserved_cpus": "0,64,16-17,80-81"},
    "page-2M": {"page_size": "2M"},
    "base-pages": {"page_size": "4K"},
    "reserved-memory": {"reserved_memory_mb": "10240"},
}


@pytest.mark.parametrize("flags", sorted(FLAG_ROWS))
@pytest.mark.parametrize("host", sorted(HOSTS))
def test_no_plan_can_double_book(host, flags):
    """Every host under every option: unrelated slices disjoint, children
    inside parents, pages within the pools, and classes the slice tree
    accepts with one size per class."""
    topology, devices, taken = HOSTS[host]()
    try:
        plan = generate.plan(
            topology, devices, parse_options(**FLAG_ROWS[flags]), taken
        )
    except NovaSlicesError as exc:
        # only what the host cannot give (a page size it lacks, a CPU
        # it does not have), never another failure
        assert exc.code in {
            "generate.page-size-missing",
            "generate.reserved-cpus-invalid",
            "generate.reserved-cpus-partial-core",
            "generate.not-enough-cpus",
            "generate.not-enough-memory",
        }, exc.message
        return
    assert slicecheck.problems(checked(plan), pools(topology)) == []
    tree = build_tree(
        [
            SliceSpec(s.name, s.resource_class, f"{s.name}.j2", s.parent)
            for s in plan.slices
        ]
    )
    sizes = {}
    for s in plan.slices:
        sizes.setdefault(s.resource_class, set()).add(
            (len(s.gpus), s.vcpus, s.memory_mib, len(s.cells))
        )
    assert all(len(v) == 1 for v in sizes.values()), sizes
    assert set(tree.classes) == set(sizes)
    assert all(s.emulator_cpus for s in plan.slices)


# -- options -----------------------------------------------------------------


def _leaf(plan, name="cell0-gpu0"):
    return next(s for s in plan.slices if s.name == name)


def test_reserved_cores_keeps_the_first_cores_of_every_cell():
    plan = plan_of("gpu8-2s", reserved_cores="2")
    # cores 0-1 kept; 14 left, 7 per GPU: 2-8 and 9-15
    assert _leaf(plan).cells[0].cores == tuple(
        (c, c + 64) for c in range(2, 9)
    )
    assert _leaf(plan).emulator_cpus == {0, 1, 64, 65}
    assert _leaf(plan, "cell0-gpu1").cells[0].cores[0] == (9, 73)


def test_reserved_cpus_per_cell():
    # only cells 0 and 1 keep a core; cells 2-3 keep none, so their
    # slices' emulator threads run on their own CPUs (Nova's default)
    plan = plan_of("gpu8-2s", reserved_cpus="0,64,16,80")
    # cell 0: 15 cores for 2 GPUs, the 15th kept too
    assert _leaf(plan).vcpus == 14
    assert _leaf(plan).emulator_cpus == {0, 15, 64, 79}
    gpu = _leaf(plan, "cell2-gpu0")
    assert gpu.cells[0].cores == tuple((c, c + 64) for c in range(32, 40))
    assert gpu.emulator_cpus == gpu.pinned_cpus
    assert plan.notes[1] == (
        "cell 0: core(s) 15 kept for the host: the cores left do not "
        "divide equally among 2 GPUs"
    )


def test_page_sizes_and_memory():
    two_m = plan_of("gpu8-2s", page_size="2M")
    assert (two_m.page_size_kb, _leaf(two_m).memory_mib) == (M2, 1024)
    # base pages: 7864320 x 4K = 30 GiB, 4 GiB kept: 13 GiB per GPU
    base = plan_of("gpu8-2s", page_size="4K")
    assert base.base_pages and _leaf(base).memory_mib == 13 * 1024
    assert _leaf(base).cells[0].pages == 13 * 1024 * 256
    # 200000 MiB kept of 224 GiB: 196 pages, 28 left, 14 GiB each
    kept = plan_of("gpu8-2s", reserved_memory_mb="200000")
    assert _leaf(kept).memory_mib == 14 * 1024


def test_gpu_selection():
    # --gpu names the T4 out of its mdev type; without --gpu-class only it
    plan = plan_of("gpu8-2s", gpus=["0000:86:00.0"])
    assert [(s.name, s.gpus) for s in plan.slices] == [
        ("host", ("0000:86:00.0",)),
        ("cell2-gpu0", ("0000:86:00.0",)),
    ]
    both = plan_of("gpu8-2s", gpus=["86:00.0"], gpu_classes=["0x0302"])
    assert len(both.gpus) == 9
    # libvirt's sample ATI card has no class code: only --gpu takes it
    topology, devices, taken = sample(
        "vircaps-x86_64-basic.xml", ["pci_1002_71c4.xml"]
    )
    picked = generate.plan(
        topology, devices, parse_options(gpus=["1002:71c4"]), taken
    )
    assert [(s.name, s.gpus) for s in picked.slices] == [
        ("host", ("0000:01:00.0",)),
        ("cell1-gpu0", ("0000:01:00.0",)),
    ]


# -- refusals ----------------------------------------------------------------


def _refused(host_data, flags):
    topology, devices, taken = host_data
    with pytest.raises(NovaSlicesError) as err:
        generate.plan(topology, devices, parse_options(**flags), taken)
    return err.value


REFUSED = [
    (
        "no-gpu-by-class",
        "gpu8-2s",
        {"gpu_classes": ["0x12"]},
        "generate.no-gpu",
        ["--gpu-class 12", "0000:17:00.0 (10de:20b5"],
    ),
    (
        "gpu-not-found",
        "gpu8-2s",
        {"gpus": ["10de:9999"]},
        "generate.gpu-not-found",
        ["--gpu 10de:9999 matches no PCI device"],
    ),
    (
        "reserved-cores-too-many",
        "gpu8-2s",
        {"reserved_cores": "15"},
        "generate.not-enough-cpus",
        ["NUMA cell 0 has 16 whole cores for 2 GPU(s)", "at most 14"],
    ),
    (
        "reserved-cpus-not-here",
        "gpu8-2s",
        {"reserved_cpus": "0,64,200"},
        "generate.reserved-cpus-invalid",
        ["CPU(s) 200", "valid: 0-127"],
    ),
    (
        "reserved-cpus-half-core",
        "gpu8-2s",
        {"reserved_cpus": "0"},
        "generate.reserved-cpus-partial-core",
        ["add 64"],
    ),
    (
        "page-size-missing",
        "gpu8-2s",
        {"page_size": "16K"},
        "generate.page-size-missing",
        ["--page-size 16K", "valid here: 4K, 2M, 1G"],
    ),
    (
        "memory-all-kept",
        "gpu8-2s",
        {"reserved_memory_mb": "300000"},
        "generate.not-enough-memory",
        ["no page size has pages left"],
    ),
    (
        "memory-too-little-per-gpu",
        "gpu8-2s",
        {"page_size": "1G", "reserved_memory_mb": "228352"},
        "generate.not-enough-memory",
        ["NUMA cell 0 has 1 1G pages left", "for 2 GPU(s): not a page"],
    ),
    (
        "page-size-gone-after-reservation",
        "gpu8-2s",
        {"page_size": "2M", "reserved_memory_mb": "2048"},
        "generate.page-size-missing",
        ["GPU cell(s) 0-3 have no 2M pages left", "valid here: 4K, 1G"],
    ),
]


@pytest.mark.parametrize(
    "host,flags,code,words",
    [r[1:] for r in REFUSED],
    ids=[r[0] for r in REFUSED],
)
def test_refusals(host, flags, code, words):
    err = _refused(HOSTS[host](), flags)
    assert err.code == code and err.exit_status == 2
    for word in words:
        assert word in err.message


def test_default_cannot_keep_a_core_per_gpu():
    # 4 CPUs (no SMT) and 4 GPUs on cell 0: no core left after one each
    err = _refused(sample("vircaps-x86_64-basic.xml", gpus=[0, 0, 0, 0]), {})
    assert err.code == "generate.not-enough-cpus"
    assert "NUMA cell 0 has 4 whole cores for 4 GPU(s)" in err.message
    # keeping none gives each GPU one CPU
    plan = generate.plan(
        *sample("vircaps-x86_64-basic.xml", gpus=[0, 0, 0, 0])[:2],
        parse_options(reserved_cores="0"),
    )
    assert [s.vcpus for s in plan.slices if s.level == "gpu"] == [1] * 4


def test_gpu_placement_refusals():
    topology = parse_capabilities(
        (SAMPLES / "vircaps-x86_64-basic.xml").read_text()
    )
    node = hostgen.node_xml(
        [hostgen.PciGpu(0x17, 0), hostgen.PciGpu(0x31, None)]
    )
    devices = parse_node_devices(split_node_file(node), topology)
    err = _refused((topology, devices, generate.Taken()), {})
    assert err.code == "generate.gpu-numa-unknown"
    assert "GPU 0000:31:00.0 has no NUMA cell" in err.message
    # naming the other one leaves it out
    plan = generate.plan(topology, devices, parse_options(gpus=["17:00.0"]))
    assert plan.gpus[0].address == "0000:17:00.0"
    err = _refused(sample("vircaps-x86_64-hmat.xml", gpus=[1]), {})
    assert err.code == "generate.gpu-cell-without-cpus"
    assert "NUMA cell 1, which has no CPUs" in err.message
    # qemu's sample cell reports no memory and no page pools
    err = _refused(sample("caps-qemu-kvm.xml", gpus=[0]), {})
    assert err.code == "generate.not-enough-memory"


OPTION_ERRORS = [
    ({"gpus": ["nvidia"]}, "generate.gpu-invalid", "--gpu 'nvidia'"),
    ({"gpus": ["0000:17:00.8"]}, "generate.gpu-invalid", "PCI address"),
    ({"gpu_classes": ["display"]}, "generate.gpu-class-invalid", "0x0302"),
    ({"gpu_classes": ["0x3"]}, "generate.gpu-class-invalid", "1 to 3 bytes"),
    ({"page_size": "huge"}, "generate.page-size-invalid", "4K, 2M, 1G"),
    ({"page_size": "0M"}, "generate.page-size-invalid", "'0M'"),
    ({"reserved_cores": "-1"}, "generate.option-invalid", "--reserved-cores"),
    ({"reserved_memory_mb": "4G"}, "generate.option-invalid", "'4G'"),
    ({"reserved_cpus": "0-99999999"}, "generate.reserved-cpus-invalid", "0,8"),
    (
        {"reserved_cpus": "0", "reserved_cores": "1"},
        "generate.options-conflict",
        "give one",
    ),
]


@pytest.mark.parametrize("flags,code,words", OPTION_ERRORS)
def test_option_errors(flags, code, words):
    with pytest.raises(NovaSlicesError) as err:
        parse_options(**flags)
    assert (err.value.code, err.value.exit_status) == (code, 2)
    assert words in err.value.message


def test_options_are_read():
    options = parse_options(
        gpus=["10DE:20B5", "17:00.0", "10de:20b5"],
        gpu_classes=["0x0302", "12"],
        reserved_cpus="0-1,64-65",
        reserved_memory_mb="512",
        page_size="2MB",
    )
    assert options == generate.Options(
        gpus=(("id", "10de", "20b5"), ("address", "0000:17:00.0")),
        gpu_classes=("0302", "12"),
        reserved_cpus=frozenset({0, 1, 64, 65}),
        reserved_memory_mb=512,
        page_size_kb=2048,
    )
    assert [
        parse_options(page_size=t).page_size_kb
        for t in ("1G", "1gib", "4", "64K")
    ] == [G1, G1, 4, 64]
