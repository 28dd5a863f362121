"""Slice templates render to valid, NUMA-aligned domains; failures are coded.

Everything here is real: the shipped templates, jinja2's sandbox, libvirt's
domain.rng, and libvirt's test driver opened on the shipped gpu8-2s node
file.  The test driver accepts pins to CPUs that do not exist, so NUMA
alignment is checked against capabilities.xml here.
"""

import os
import pathlib
import uuid

import libvirt
import pytest
from lxml import etree

from nova_slices.errors import TemplateError
from nova_slices.virt import schema
from nova_slices.virt.templates import render_slice_template

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
BUNDLE = ROOT / "etc" / "hosts" / "gpu8-2s"

GPU_CELL = {
    "0000:17:00.0": 0,
    "0000:31:00.0": 0,
    "0000:4b:00.0": 1,
    "0000:65:00.0": 1,
    "0000:98:00.0": 2,
    "0000:b1:00.0": 2,
    "0000:ca:00.0": 3,
    "0000:e3:00.0": 3,
}
GPUS = list(GPU_CELL)
# slice -> (GPUs, vCPUs, GiB per guest cell, guest sockets)
SLICES = {
    "8_1": (GPUS, 112, 192, 2),
    "4_1": (GPUS[:4], 56, 192, 1),
    "4_2": (GPUS[4:], 56, 192, 1),
    **{f"1_{i + 1}": ([gpu], 14, 96, 1) for i, gpu in enumerate(GPUS)},
}
TREE = {
    "8_1": ["4_1", "4_2"],
    "4_1": ["1_1", "1_2", "1_3", "1_4"],
    "4_2": ["1_5", "1_6", "1_7", "1_8"],
}


def make_context(**overrides):
    ctx = {
        "instance": {"uuid": str(uuid.uuid4()), "name": "instance-00000001"},
        "flavor": {
            "name": "gpu.1",
            "vcpus": 14,
            "memory_mb": 98304,
            "extra_specs": {"resources:VCPU": "0"},
        },
        "disk_path": "/var/lib/nova/instances/x/disk",
        "interfaces": [
            {
                "type": "bridge",
                "source": "br-int",
                "mac_address": "52:54:00:00:00:01",
            },
            {
                "type": "network",
                "source": "default",
                "mac_address": "52:54:00:00:00:02",
                "model": "e1000",
            },
        ],
        "metadata": {"owner": "team-a"},
        "slice": {"name": "1_1", "resource_class": "CUSTOM_SLICE_1_GPU_V1"},
        "devices": {"pci": [], "mdev": []},
        "host": {"hostname": "gpu8-2s"},
    }
    ctx.update(overrides)
    return ctx


def cpuset(text):
    out = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def pci_address(el):
    return "%04x:%02x:%02x.%x" % tuple(
        int(el.get(k), 16) for k in ("domain", "bus", "slot", "function")
    )


@pytest.fixture(scope="module")
def host():
    """cell -> CPUs, cpu -> siblings, cell -> 1G pages (capabilities.xml)."""
    caps = etree.parse(str(BUNDLE / "capabilities.xml"))
    cells, siblings, pages = {}, {}, {}
    for cell in caps.findall("host/topology/cells/cell"):
        cid = int(cell.get("id"))
        cells[cid] = {int(c.get("id")) for c in cell.findall("cpus/cpu")}
        for c in cell.findall("cpus/cpu"):
            siblings[int(c.get("id"))] = cpuset(c.get("siblings"))
        pages[cid] = int(cell.find("pages[@size='1048576']").text)
    return {"cells": cells, "siblings": siblings, "pages_1g": pages}


@pytest.fixture(scope="module")
def conn():
    c = libvirt.open(f"test://{BUNDLE / 'node.xml'}")
    yield c
    c.close()


def render(name, **overrides):
    return render_slice_template(
        str(TEMPLATES / f"slice_{name}.xml.j2"), make_context(**overrides)
    )


def pins(dom):
    return {
        int(p.get("vcpu")): int(p.get("cpuset"))
        for p in dom.findall("cputune/vcpupin")
    }


# -- the eleven shipped templates ---------------------------------------------


def test_all_eleven_templates_ship():
    names = sorted(p.name for p in TEMPLATES.glob("slice_*.xml.j2"))
    assert names == sorted(f"slice_{n}.xml.j2" for n in SLICES)


@pytest.mark.parametrize("name", sorted(SLICES))
def test_template_renders_valid_numa_aligned_domain(name, host, conn):
    gpus, vcpus, gib_per_cell, sockets = SLICES[name]
    cells = sorted({GPU_CELL[g] for g in gpus})
    ctx_uuid = str(uuid.uuid4())
    xml = render(name, instance={"uuid": ctx_uuid, "name": f"slice-{name}"})
    schema.validate_domain_xml(xml)
    dom = etree.fromstring(xml.encode())

    assert dom.find("metadata") is None
    assert (dom.findtext("name"), dom.findtext("uuid")) == (
        f"slice-{name}",
        ctx_uuid,
    )
    assert dom.find("os/type").text == "hvm"
    assert dom.find("vcpu").get("placement") == "static"
    assert int(dom.findtext("vcpu")) == vcpus

    # GPUs are the slice's, managed PCI passthrough
    hostdevs = dom.findall("devices/hostdev")
    assert all(
        h.get("managed") == "yes" and h.get("type") == "pci" for h in hostdevs
    )
    assert [pci_address(h.find("source/address")) for h in hostdevs] == gpus

    # one pin per vCPU, all on the GPUs' cells, SMT siblings adjacent
    pinned = pins(dom)
    assert sorted(pinned) == list(range(vcpus))
    allowed = set().union(*(host["cells"][c] for c in cells))
    assert set(pinned.values()) <= allowed
    assert len(set(pinned.values())) == vcpus
    for v in range(0, vcpus, 2):
        assert host["siblings"][pinned[v]] == {pinned[v], pinned[v + 1]}

    # emulator threads on the cells' host-reserved cores (0 and 8 of each cell)
    emulator = cpuset(dom.find("cputune/emulatorpin").get("cpuset"))
    reserved = {16 * c + o + t for c in cells for o in (0, 8) for t in (0, 64)}
    assert emulator == reserved
    assert not emulator & set(pinned.values())

    # guest NUMA cells map 1:1 onto the host cells, memory from 1G pages there
    assert dom.find("numatune/memory").get("mode") == "strict"
    assert cpuset(dom.find("numatune/memory").get("nodeset")) == set(cells)
    memnodes = dom.findall("numatune/memnode")
    assert [int(m.get("nodeset")) for m in memnodes] == cells
    assert [int(m.get("cellid")) for m in memnodes] == list(range(len(cells)))
    guest_cells = dom.findall("cpu/numa/cell")
    assert [int(c.get("id")) for c in guest_cells] == list(range(len(cells)))
    for gcell, hcell in zip(guest_cells, cells, strict=True):
        assert (gcell.get("memory"), gcell.get("unit")) == (
            str(gib_per_cell),
            "GiB",
        )
        assert gcell.get("memAccess")
        assert int(gcell.get("memory")) <= host["pages_1g"][hcell]
        for v in cpuset(gcell.get("cpus")):
            assert pinned[v] in host["cells"][hcell]
    page = dom.find("memoryBacking/hugepages/page")
    assert (page.get("size"), page.get("unit")) == ("1", "G")
    # <page nodeset> names guest cells, all of which are hugepage-backed
    assert cpuset(page.get("nodeset")) == set(range(len(cells)))
    assert int(dom.findtext("memory")) == gib_per_cell * len(cells)

    cpu = dom.find("cpu")
    assert cpu.get("mode") == "host-passthrough"
    topo = cpu.find("topology").attrib
    assert int(topo["sockets"]) == sockets
    assert (
        int(topo["sockets"])
        * int(topo["dies"])
        * int(topo["cores"])
        * int(topo["threads"])
        == vcpus
    )

    # the disk and NICs come from the context
    assert (
        dom.find("devices/disk/source").get("file")
        == "/var/lib/nova/instances/x/disk"
    )
    nics = dom.findall("devices/interface")
    assert [(n.get("type"), n.find("model").get("type")) for n in nics] == [
        ("bridge", "virtio"),
        ("network", "e1000"),
    ]
    assert nics[0].find("source").get("bridge") == "br-int"
    assert nics[1].find("source").get("network") == "default"

    # libvirt itself agrees: schema-validated define, then start
    d = conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    try:
        d.create()
        assert d.isActive()
        d.destroy()
    finally:
        d.undefine()


def test_slice_tree_nests_and_siblings_do_not_overlap():
    doms = {n: etree.fromstring(render(n).encode()) for n in SLICES}
    cpus = {n: set(pins(d).values()) for n, d in doms.items()}
    gpus = {
        n: {
            pci_address(a) for a in d.findall("devices/hostdev/source/address")
        }
        for n, d in doms.items()
    }
    for parent, children in TREE.items():
        assert set().union(*(cpus[c] for c in children)) == cpus[parent]
        assert set().union(*(gpus[c] for c in children)) == gpus[parent]
        for i, a in enumerate(children):
            for b in children[i + 1 :]:
                assert not cpus[a] & cpus[b] and not gpus[a] & gpus[b]


def test_devices_pci_and_mdev_become_hostdevs():
    mdev = str(uuid.uuid4())
    xml = render(
        "1_1",
        devices={
            "pci": [{"address": "0000:3b:00.2"}],
            "mdev": [{"uuid": mdev}],
        },
    )
    schema.validate_domain_xml(xml)
    dom = etree.fromstring(xml.encode())
    pci = [
        pci_address(a)
        for a in dom.findall("devices/hostdev[@type='pci']/source/address")
    ]
    assert pci == ["0000:17:00.0", "0000:3b:00.2"]
    assert (
        dom.find("devices/hostdev[@type='mdev']/source/address").get("uuid")
        == mdev
    )


# -- injection ----------------------------------------------------------------


def test_instance_name_cannot_inject_markup(conn):
    evil = (
        "x</name><devices><hostdev mode='subsystem' type='pci'><source>"
        "<address domain='0x0000' bus='0x98' slot='0x00' function='0x0'/>"
        "</source></hostdev></devices><name>y"
    )
    xml = render(
        "1_1",
        instance={"uuid": str(uuid.uuid4()), "name": evil},
        disk_path="/tmp/a' b\"<c>&d",
    )
    dom = etree.fromstring(xml.encode())
    assert dom.findtext("name") == evil
    assert len(dom.findall("name")) == 1
    assert len(dom.findall(".//hostdev")) == 1
    assert dom.find("devices/disk/source").get("file") == "/tmp/a' b\"<c>&d"
    schema.validate_domain_xml(xml)


# -- errors -------------------------------------------------------------------

BASE = '{% extends "_base.xml.j2" %}\n'
GOOD_BODY = (
    '{% set gpus = ["0000:17:00.0"] %}\n'
    '{% set cells = [{"host_node": 0, "memory_gib": 1,'
    ' "cores": [[1, 65]]}] %}\n'
    '{% set emulator_cpuset = "0" %}\n'
)


@pytest.fixture
def tdir(tmp_path):
    (tmp_path / "_base.xml.j2").write_text(
        (TEMPLATES / "_base.xml.j2").read_text()
    )
    return tmp_path


def _missing(d):
    return d / "nope.xml.j2", "nope.xml.j2"


def _directory(d):
    (d / "dir.xml.j2").mkdir()  # root reads anything, not a directory
    return d / "dir.xml.j2", "not a regular file"


def _not_utf8(d):
    p = d / "latin1.xml.j2"
    p.write_bytes(b"<domain>\xe9\xff</domain>")
    return p, "UTF-8"


def _syntax(d):
    p = d / "syntax.xml.j2"
    p.write_text(BASE + GOOD_BODY + "{% if %}\n")
    return p, "line 5"


def _undefined(d):
    p = d / "undefined.xml.j2"
    p.write_text("<domain><name>{{ no_such_thing }}</name></domain>\n")
    return p, "no_such_thing"


def _undefined_in_base(d):
    p = d / "nocells.xml.j2"
    p.write_text(BASE + '{% set gpus = [] %}{% set emulator_cpuset = "0" %}\n')
    return p, "cells"


def _extends_missing(d):
    p = d / "orphan.xml.j2"
    p.write_text('{% extends "_gone.xml.j2" %}\n')
    return p, "_gone.xml.j2"


def _sandbox(d):
    p = d / "escape.xml.j2"
    p.write_text("<x>{{ instance.__class__.__mro__ }}</x>\n")
    return p, "SecurityError"


def _mutation(d):
    p = d / "mutate.xml.j2"
    p.write_text("<x>{{ interfaces.append(1) }}</x>\n")
    return p, "append"


def _invalid_xml(d):
    p = d / "broken.xml.j2"
    p.write_text("<domain>\n<name>{{ instance.name }}</nam>\n</domain>\n")
    return p, "line 2"


@pytest.mark.parametrize(
    "make, code",
    [
        (_missing, "template.missing"),
        (_directory, "template.unreadable"),
        (_not_utf8, "template.unreadable"),
        (_syntax, "template.syntax"),
        (_undefined, "template.undefined"),
        (_undefined_in_base, "template.undefined"),
        (_extends_missing, "template.missing"),
        (_sandbox, "template.render"),
        (_mutation, "template.render"),
        (_invalid_xml, "template.invalid-xml"),
    ],
)
def test_template_errors_are_coded(tdir, make, code):
    path, needle = make(tdir)
    with pytest.raises(TemplateError) as exc:
        render_slice_template(str(path), make_context())
    assert exc.value.code == code
    assert needle in exc.value.message
    assert exc.value.key == "template_file"


def test_rendered_domain_failing_schema_is_coded(tdir):
    p = tdir / "badattr.xml.j2"
    p.write_text(BASE + GOOD_BODY.replace('"0"', '"not-a-cpuset"'))
    xml = render_slice_template(str(p), make_context())  # well-formed
    with pytest.raises(TemplateError) as exc:
        schema.validate_domain_xml(xml)
    assert exc.value.code == "template.invalid-domain"
    assert "line " in exc.value.message


def test_schema_accepts_elements_and_reports_bad_input(tdir):
    good = etree.fromstring(render("1_1").encode())
    schema.validate_domain_xml(good)
    schema.validate_domain_xml(etree.ElementTree(good))
    with pytest.raises(TemplateError) as exc:
        schema.validate_domain_xml("<domain>")
    assert exc.value.code == "template.invalid-xml"
    with pytest.raises(TemplateError) as exc:
        schema.validate_domain_xml(
            render("1_1"), schema_path=str(tdir / "none.rng")
        )
    assert exc.value.code == "template.schema-unavailable"


def test_edited_template_is_reloaded(tdir):
    p = tdir / "edit.xml.j2"
    p.write_text("<x>one</x>\n")
    assert "one" in render_slice_template(str(p), make_context())
    p.write_text("<x>two</x>\n")
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert "two" in render_slice_template(str(p), make_context())
