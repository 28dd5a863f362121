"""``generate-slices`` end to end: generated, validated, then filled.

For the shipped bundles, two many-cell hosts (hostgen capabilities
with A100s on several cells, as a test-driver bundle) and libvirt's two
many-cell capabilities samples with GPUs added: the CLI writes
the slices; ``validate`` with the generated configuration renders every
template valid; ``flavor-specs`` gives one class per size; every
rendered template is checked with tests/slicecheck.py (unrelated slices
share no GPU, pinned pCPU or pages, children inside parents); then
guests are spawned on libvirt's test driver against the real Placement,
class by class until each is refused, and the running domains' XML is
read back after every round: no two guests share a PCI device or a
pinned pCPU, ``list`` reports no disagreement, and the slices taken are
exactly those the tree leaves free.
"""

import itertools
import pathlib
import uuid

import pytest
from lxml import etree

from nova_slices import data
from nova_slices.cmd.runtime import Runtime
from nova_slices.errors import NovaSlicesError
from nova_slices.virt.holdings import domain_holdings
from tests import hostgen, slicecheck
from tests.functional.conftest import BUNDLE_CONF, make_conf

NFV_CONF = f"{data.host_bundle('nfv-snc-2s')}/nova-slices.conf"
SAMPLES = pathlib.Path(__file__).parent.parent / "data" / "libvirt-samples"

HOSTS = {
    "gpu8-2s": lambda tmp: BUNDLE_CONF,
    "nfv-snc-2s": lambda tmp: NFV_CONF,
    # 16 cells in 2 sockets: GPUs alone on cells 1 and 9, in pairs on
    # cells 2 and 12
    "amd-16-cells": lambda tmp: _synthetic(
        tmp, hostgen.amd_l3_as_numa_2s(), [1, 2, 2, 9, 12, 12]
    ),
    # 8 cells of 32 cores x 2 threads (512 CPUs), one GPU per cell
    "512-threads": lambda tmp: _synthetic(
        tmp, hostgen.two_socket_512_threads(), range(8)
    ),
    # libvirt's own many-cell samples, with GPUs added: 4 cells of 4
    # CPUs (uneven: two GPUs on cell 1, so each 1-GPU size is a class)
    "libvirt-x86_64-basic": lambda tmp: _synthetic(
        tmp, _sample("vircaps-x86_64-basic.xml"), [0, 1, 1, 2, 3]
    ),
    # 2 cells, the second memory-only (HMAT): GPUs on cell 0 only
    "libvirt-x86_64-hmat": lambda tmp: _synthetic(
        tmp, _sample("vircaps-x86_64-hmat.xml"), [0, 0]
    ),
}
#: slice classes and sizes each host must end up with
CLASSES = {
    "gpu8-2s": 4,
    "nfv-snc-2s": 2,
    "amd-16-cells": 5,
    "512-threads": 3,
    "libvirt-x86_64-basic": 6,
    "libvirt-x86_64-hmat": 2,
}


def _sample(name):
    return (SAMPLES / name).read_text()


def _synthetic(tmp, capabilities, gpu_cells):
    bundle = hostgen.write_bundle(
        tmp / "bundle", capabilities, hostgen.gpus_on(list(gpu_cells))
    )
    conf = tmp / "input.conf"
    conf.write_text(f"[libvirt]\nhost_bundle = {bundle}\n")
    return conf


def _size(s):
    return (len(s["gpus"]), s["vcpus"], s["memory_mb"], len(s["host_cells"]))


class Tree:
    """The generated slices, and which the tree leaves free."""

    def __init__(self, slices):
        self.slices = {s["name"]: s for s in slices}
        self.parent = {s["name"]: s["conflict_parent"] for s in slices}
        self.by_class = {}
        for s in slices:
            self.by_class.setdefault(s["resource_class"], []).append(s["name"])

    def ancestors(self, name):
        out, cur = set(), self.parent[name]
        while cur is not None:
            out.add(cur)
            cur = self.parent[cur]
        return out

    def free(self, rc, in_use):
        return {
            name
            for name in self.by_class[rc]
            if name not in in_use
            and not any(
                u in self.ancestors(name) or name in self.ancestors(u)
                for u in in_use
            )
        }

    def ascending(self):
        return sorted(
            self.by_class,
            key=lambda rc: _size(self.slices[self.by_class[rc][0]]),
        )


def _running_holdings(rt):
    out = {}
    for dom in rt.host.domains():
        out[dom.name()] = domain_holdings(etree.fromstring(dom.XMLDesc(0)))
    return out


def _assert_no_sharing(rt):
    held = _running_holdings(rt)
    for (a, ha), (b, hb) in itertools.combinations(sorted(held.items()), 2):
        assert not ha.pci & hb.pci, (a, b, ha.pci & hb.pci)
        assert not ha.pinned_cpus & hb.pinned_cpus, (a, b)
        assert not ha.emulator_cpus & hb.pinned_cpus, (a, b)
    return held


class Filler:
    """Spawns through one driver, as nova-compute does, and checks."""

    def __init__(self, rt, tree):
        self.rt, self.tree = rt, tree
        self.guests = {}  # name -> slice
        self.count = itertools.count()

    def fill(self, classes):
        for rc in classes:
            expected = self.tree.free(rc, set(self.guests.values()))
            got = set()
            while True:
                name = f"g{next(self.count)}"
                try:
                    view = self.rt.driver.spawn(name, rc)
                except NovaSlicesError as exc:
                    assert exc.code == "slice.no-candidates", exc.message
                    break
                got.add(view.slice_name)
                self.guests[name] = view.slice_name
            assert got == expected, (rc, got, expected)
        held = _assert_no_sharing(self.rt)
        assert set(held) == set(self.guests)

    def clear(self):
        for name in list(self.guests):
            self.rt.driver.destroy(name)
            del self.guests[name]


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_generated_slices_validate_and_fill(host, tmp_path, cli, state_path):
    config = HOSTS[host](tmp_path)
    out = tmp_path / "generated"
    status, gen, err = cli(
        "generate-slices",
        "--output-dir",
        str(out),
        "--format",
        "json",
        config=config,
    )
    assert status == 0, err
    conf = out / "nova-slices.conf"
    assert gen["config_file"] == str(conf)
    tree = Tree(gen["slices"])

    status, report, err = cli("validate", "--format", "json", config=conf)
    assert status == 0 and report["valid"], report
    assert sorted(report["slices"]) == sorted(tree.slices)

    # one class per size, and one size per class
    status, specs, _ = cli("flavor-specs", "--format", "json", config=conf)
    assert status == 0 and set(specs) == set(tree.by_class)
    sizes = {}
    for s in gen["slices"]:
        sizes.setdefault(_size(s), set()).add(s["resource_class"])
    assert all(len(classes) == 1 for classes in sizes.values()), sizes
    assert len(sizes) == len(specs) == CLASSES[host]

    with Runtime(make_conf(state_path, [conf])) as rt:
        # the templates as libvirt would get them cannot double-book
        rendered = {}
        for name, s in tree.slices.items():
            xml = rt.driver.render(f"check-{name}", str(uuid.uuid4()), name)
            rendered[name] = slicecheck.from_domain(
                s["conflict_parent"], etree.fromstring(xml.encode())
            )
            assert rendered[name]["pci"] == set(s["gpus"])
            assert rendered[name]["pinned"] == set(s["pinned_cpus"])
        pools = {
            (cell.id, pool.size_kb): pool.total
            for cell in rt.host.topology().cells
            for pool in cell.pages
        }
        assert slicecheck.problems(rendered, pools) == []

        rt.driver.update_provider_tree()
        filler = Filler(rt, tree)
        ascending = tree.ascending()
        # smallest first, then bigger: every leaf taken, nothing else
        filler.fill(ascending)
        taken = [
            g for s in filler.guests.values() for g in tree.slices[s]["gpus"]
        ]
        assert sorted(taken) == sorted(gen["slices"][0]["gpus"])
        _check_list(cli, conf, filler)
        status, refused, _ = cli(
            "spawn",
            "one-more",
            "--slice-class",
            ascending[0],
            "--format",
            "json",
            config=conf,
        )
        assert status == 1
        assert refused["errors"][0]["code"] == "slice.no-candidates"
        # each bigger class first, then the smaller ones around it
        for rc in ascending[1:]:
            filler.clear()
            filler.fill([rc, *ascending])
            _check_list(cli, conf, filler)
        filler.clear()


def _check_list(cli, conf, filler):
    status, listing, _ = cli("list", "--format", "json", config=conf)
    assert status == 0 and listing["discrepancies"] == []
    assert {g["name"]: g["slice"] for g in listing["guests"]} == filler.guests


def test_generate_slices_refusals(cli, tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    (out / "nova-slices.conf").write_text("# mine\n")
    status, _, err = cli("generate-slices", "--output-dir", str(out))
    assert status == 2
    assert err.startswith(
        f"error [generate.output-not-empty]: --output-dir {out}"
    )
    assert (out / "nova-slices.conf").read_text() == "# mine\n"
    status, body, _ = cli(
        "generate-slices",
        "--output-dir",
        str(tmp_path / "new"),
        "--gpu-class",
        "0x12",
        "--format",
        "json",
    )
    assert status == 2 and body["errors"][0]["code"] == "generate.no-gpu"
    assert not (tmp_path / "new").exists()
    status, _, err = cli(
        "generate-slices",
        "--output-dir",
        str(tmp_path / "new"),
        "--page-size",
        "3M",
    )
    assert status == 2 and "generate.page-size-missing" in err
    assert "valid here: 4K, 2M, 1G" in err
