"""spawn / list / destroy / restart through the CLI, on the test driver and
the real Placement service, each command its own Runtime as a new process
would have."""

import os
import uuid

import libvirt
import pytest
from lxml import etree

from nova_slices.cmd.runtime import Runtime
from nova_slices.virt import metadata
from tests.functional.conftest import BUNDLE_CONF, make_conf


def _used(providers):
    return {
        p["slice"]: {rc: i["used"] for rc, i in p["inventories"].items()}
        for p in providers
        if p["slice"]
    }


def test_spawn_list_destroy_across_processes(cli, state_path):
    status, guest, _ = cli(
        "spawn",
        "g4",
        "--slice-class",
        "CUSTOM_SLICE_4_GPU_V1",
        "--format",
        "json",
    )
    assert status == 0 and guest["slice"] == "4_1"
    status, small, _ = cli(
        "spawn",
        "g1",
        "--slice-class",
        "CUSTOM_SLICE_1_GPU_V1",
        "--format",
        "json",
    )
    assert status == 0 and small["slice"] == "1_5"

    status, listing, _ = cli("list", "--format", "json")
    assert status == 0
    assert [
        (g["name"], g["slice"], g["state"]) for g in listing["guests"]
    ] == [("g1", "1_5", "running"), ("g4", "4_1", "running")]
    assert listing["discrepancies"] == []
    g4 = next(g for g in listing["guests"] if g["name"] == "g4")
    assert g4["instance_uuid"] == guest["instance_uuid"]
    assert g4["allocations"]["4_1"] == {
        "CUSTOM_SLICE_4_GPU_V1": 1,
        "CUSTOM_SLICE_4_GPU_V1_UNITS": 4,
    }
    assert g4["allocations"]["8_1"] == {"CUSTOM_SLICE_8_GPU_V1_UNITS": 4}

    status, providers, _ = cli("providers", "--format", "json")
    used = _used(providers)
    assert used["8_1"] == {
        "CUSTOM_SLICE_8_GPU_V1": 0,
        "CUSTOM_SLICE_8_GPU_V1_UNITS": 5,
    }
    assert used["4_2"]["CUSTOM_SLICE_4_GPU_V1_UNITS"] == 1
    assert {p["name"] for p in providers} >= {"gpu8-2s", "gpu8-2s_slice_1_8"}

    # the domain records itself and is the rendered template
    conf = make_conf(state_path)
    with Runtime(conf) as rt:
        dom = rt.host.lookup("g4")
        xml = dom.XMLDesc(0)
    record = metadata.read(xml)
    assert (
        record.instance_uuid,
        record.slice_name,
        record.resource_class,
    ) == (guest["instance_uuid"], "4_1", "CUSTOM_SLICE_4_GPU_V1")
    root = etree.fromstring(xml.encode())
    assert root.findtext("uuid") == guest["instance_uuid"]
    assert root.find("numatune/memory").get("nodeset") == "0-1"
    assert len(root.findall("devices/hostdev")) == 4

    status, out, _ = cli(
        "spawn",
        "g8",
        "--slice-class",
        "CUSTOM_SLICE_8_GPU_V1",
        "--format",
        "json",
    )
    assert status == 1
    assert out["errors"][0]["code"] == "slice.no-candidates"
    assert out["reasons"] == [
        {"slice": "8_1", "reason": "conflicts with 1_5, 4_1 in use"}
    ]

    for name in ("g4", "g1"):
        status, out, _ = cli("destroy", name, "--format", "json")
        assert status == 0
    status, providers, _ = cli("providers", "--format", "json")
    assert all(v == 0 for u in _used(providers).values() for v in u.values())
    status, listing, _ = cli("list", "--format", "json")
    assert listing == {"guests": [], "discrepancies": []}
    assert os.listdir(state_path / "libvirt" / "domains") == []


def test_restart_reports_disagreements_without_fixing_them(cli, state_path):
    cli("spawn", "keep", "--slice-class", "CUSTOM_SLICE_1_GPU_V1")
    cli("spawn", "orphan", "--slice-class", "CUSTOM_SLICE_1_GPU_V1")
    conf = make_conf(state_path)
    stray = str(uuid.uuid4())
    with Runtime(conf) as rt:
        views, problems = rt.driver.guests()
        assert problems == []
        orphan = next(v for v in views if v.name == "orphan")
        # Placement loses the orphan's allocation...
        rt.client.delete(f"/allocations/{orphan.instance_uuid}")
        # ...and holds one for a guest libvirt does not know
        free = rt.driver.providers.provider_of_slice()["1_8"]
        root_units = rt.driver.providers.provider_of_slice()
        resp = rt.client.put(
            f"/allocations/{stray}",
            {
                "allocations": {
                    free: {"resources": {"CUSTOM_SLICE_1_GPU_V1": 1}},
                    root_units["4_2"]: {
                        "resources": {"CUSTOM_SLICE_4_GPU_V1_UNITS": 1}
                    },
                    root_units["8_1"]: {
                        "resources": {"CUSTOM_SLICE_8_GPU_V1_UNITS": 1}
                    },
                },
                "project_id": "p",
                "user_id": "u",
                "consumer_generation": None,
            },
        )
        assert resp.status == 204
    status, listing, _ = cli("list", "--format", "json")
    assert status == 0
    assert sorted(g["name"] for g in listing["guests"]) == ["keep", "orphan"]
    codes = {(d["code"], d["instance_uuid"]) for d in listing["discrepancies"]}
    assert codes == {
        ("guest.no-allocation", orphan.instance_uuid),
        ("allocation.no-guest", stray),
    }
    # reported, not fixed: a second look sees the same
    status, again, _ = cli("list", "--format", "json")
    assert again["discrepancies"] == listing["discrepancies"]
    status, text, _ = cli("list")
    assert "warning [allocation.no-guest]" in text


def _conf_with_templates(tmp_path, template_dir):
    path = tmp_path / "nova-slices.conf"
    with open(BUNDLE_CONF) as src:
        body = src.read()
    path.write_text(
        body.replace(
            "[libvirt]\n", f"[libvirt]\nslice_template_dir = {template_dir}\n"
        )
    )
    return path


def _break(template_dir, name, mutate):
    path = template_dir / name
    path.write_text(mutate(path.read_text()))


BROKEN_TEMPLATES = [
    (
        "missing",
        lambda d: os.unlink(d / "slice_1_5.xml.j2"),
        "template.missing",
    ),
    (
        "unreadable",
        lambda d: (
            os.unlink(d / "slice_1_5.xml.j2"),
            os.mkdir(d / "slice_1_5.xml.j2"),
        ),
        "template.unreadable",
    ),
    (
        "syntax",
        lambda d: _break(d, "slice_1_5.xml.j2", lambda t: t + "\n{% if %}\n"),
        "template.syntax",
    ),
    (
        "invalid domain",
        lambda d: _break(
            d,
            "_base.xml.j2",
            lambda t: t.replace("<vcpu", "<vcpus", 1).replace(
                "</vcpu>", "</vcpus>", 1
            ),
        ),
        "template.invalid-domain",
    ),
    (
        "not xml",
        lambda d: _break(
            d, "_base.xml.j2", lambda t: t.replace("</domain>", "")
        ),
        "template.invalid-xml",
    ),
    (
        "host mismatch",
        lambda d: _break(
            d,
            "slice_1_5.xml.j2",
            lambda t: (
                t.replace("[32,", "[900,", 1)
                if "[32," in t
                else t.replace('"32,', '"900,', 1)
            ),
        ),
        "template.host-mismatch",
    ),
]


@pytest.mark.parametrize(
    "label,breaker,code",
    BROKEN_TEMPLATES,
    ids=[b[0] for b in BROKEN_TEMPLATES],
)
def test_broken_templates_fail_spawn_and_release_the_claim(
    cli, tmp_path, template_dir, label, breaker, code
):
    config = _conf_with_templates(tmp_path, template_dir)
    # fill 4_1's leaves so the next 1-GPU guest lands on 1_5
    status, _, _ = cli(
        "spawn", "g4", "--slice-class", "CUSTOM_SLICE_4_GPU_V1", config=config
    )
    assert status == 0
    breaker(template_dir)
    status, out, err = cli(
        "spawn",
        "bad",
        "--slice-class",
        "CUSTOM_SLICE_1_GPU_V1",
        "--format",
        "json",
        config=config,
    )
    assert status == 2, out
    assert out["errors"][0]["code"] == code
    assert "Traceback" not in err
    status, listing, _ = cli("list", "--format", "json", config=config)
    assert [g["name"] for g in listing["guests"]] == ["g4"]
    assert listing["discrepancies"] == []
    status, providers, _ = cli("providers", "--format", "json", config=config)
    assert _used(providers)["1_5"] == {"CUSTOM_SLICE_1_GPU_V1": 0}
    status, out, _ = cli("validate", "--format", "json", config=config)
    assert status == 2
    assert code in {e["code"] for e in out["errors"]}


def test_instance_name_is_text_not_xml(cli, state_path):
    # libvirt refuses '/', so the closing-tag form cannot reach libvirt...
    status, out, _ = cli(
        "spawn",
        "x</name><devices>",
        "--slice-class",
        "CUSTOM_SLICE_1_GPU_V1",
        "--format",
        "json",
    )
    assert status == 2 and out["errors"][0]["code"] == "guest.name-invalid"
    # ...and markup without it comes out as text
    name = "x<name><devices><hostdev mode='subsystem'>&amp;\"y"
    status, out, _ = cli(
        "spawn",
        name,
        "--slice-class",
        "CUSTOM_SLICE_1_GPU_V1",
        "--format",
        "json",
    )
    assert status == 0, out
    with Runtime(make_conf(state_path)) as rt:
        root = etree.fromstring(rt.host.lookup(name).XMLDesc(0).encode())
    assert root.findtext("name") == name
    assert len(root.findall("devices/hostdev")) == 1


def test_duplicate_name_is_refused_before_claiming(cli):
    assert (
        cli("spawn", "dup", "--slice-class", "CUSTOM_SLICE_1_GPU_V1")[0] == 0
    )
    status, out, _ = cli(
        "spawn",
        "dup",
        "--slice-class",
        "CUSTOM_SLICE_1_GPU_V1",
        "--format",
        "json",
    )
    assert status == 1 and out["errors"][0]["code"] == "guest.name-in-use"
    status, providers, _ = cli("providers", "--format", "json")
    assert (
        sum(
            u["CUSTOM_SLICE_1_GPU_V1"]
            for s, u in _used(providers).items()
            if s.startswith("1_")
        )
        == 1
    )


def test_unknown_class_and_guest(cli):
    status, out, _ = cli(
        "spawn", "x", "--slice-class", "CUSTOM_NOPE", "--format", "json"
    )
    assert status == 2 and out["errors"][0]["code"] == "slice.unknown-class"
    status, out, _ = cli("destroy", "ghost", "--format", "json")
    assert status == 1 and out["errors"][0]["code"] == "guest.not-found"


def test_libvirt_test_driver_validates_on_define(state_path):
    with Runtime(make_conf(state_path)) as rt:
        with pytest.raises(libvirt.libvirtError):
            rt.host.conn.defineXMLFlags(
                "<domain type='kvm'><name>x</name><memory>1</memory>"
                "<bogus/></domain>",
                libvirt.VIR_DOMAIN_DEFINE_VALIDATE,
            )


def test_removed_slice_in_use_stays_reserved_until_its_guest_goes(
    cli, tmp_path
):
    assert cli("spawn", "g", "--slice-class", "CUSTOM_SLICE_1_GPU_V1")[0] == 0
    smaller = tmp_path / "smaller.conf"
    with open(BUNDLE_CONF) as src:
        kept = [
            line
            for line in src
            if not any(
                f'"{n}"' in line for n in ("4_1", "1_1", "1_2", "1_3", "1_4")
            )
        ]
    smaller.write_text("".join(kept))
    status, out, err = cli("sync", "--format", "json", config=smaller)
    assert status == 0
    assert out["kept"] == ["gpu8-2s_slice_1_1", "gpu8-2s_slice_4_1"]
    assert sorted(out["deleted"]) == [
        "gpu8-2s_slice_1_2",
        "gpu8-2s_slice_1_3",
        "gpu8-2s_slice_1_4",
    ]
    assert len(out["warnings"]) == 2
    status, providers, _ = cli("providers", "--format", "json", config=smaller)
    stale = {p["name"]: p for p in providers if p["slice"] is None}
    assert stale["gpu8-2s_slice_1_1"]["inventories"] == {
        "CUSTOM_SLICE_1_GPU_V1": {"total": 1, "reserved": 1, "used": 1}
    }
    assert stale["gpu8-2s_slice_1_1"]["reported"] is True
    # the guest can still be destroyed, and then the stale slices go
    assert cli("destroy", "g", config=smaller)[0] == 0
    status, out, _ = cli("sync", "--format", "json", config=smaller)
    assert out["deleted"] == ["gpu8-2s_slice_1_1", "gpu8-2s_slice_4_1"]
    status, providers, _ = cli("providers", "--format", "json", config=smaller)
    # the root, the six remaining slices and the two device providers
    assert sorted(p["name"] for p in providers if not p["slice"]) == [
        "gpu8-2s",
        "gpu8-2s_pci_0000_3b_00_0",
        "gpu8-2s_pci_0000_86_00_0",
    ]
    assert len([p for p in providers if p["slice"]]) == 6


def test_list_reports_slice_guests_sharing_a_gpu_cpus_and_pages(
    cli, state_path
):
    """Two slice guests made to share what their slices keep apart, by
    editing one's domain file as a hand edit or a bad template would:
    ``list`` names each shared thing with its code, and fixes nothing."""
    for name in ("a", "b"):
        status, _, _ = cli(
            "spawn", name, "--slice-class", "CUSTOM_SLICE_1_GPU_V1"
        )
        assert status == 0
    domains = os.path.join(state_path, "libvirt", "domains")
    a = etree.parse(os.path.join(domains, "a.xml")).getroot()
    b_path = os.path.join(domains, "b.xml")
    b = etree.parse(b_path).getroot()
    gpu_a = a.find("devices/hostdev[@type='pci']/source/address")
    gpu_b = b.find("devices/hostdev[@type='pci']/source/address")
    for attr in ("domain", "bus", "slot", "function"):
        gpu_b.set(attr, gpu_a.get(attr))
    b.replace(b.find("cputune"), a.find("cputune"))
    b.find("cpu/numa/cell").attrib.update({"memory": "160", "unit": "GiB"})
    etree.ElementTree(b).write(b_path)
    gpu = "%04x:%02x:%02x.%x" % tuple(
        int(gpu_a.get(k), 0) for k in ("domain", "bus", "slot", "function")
    )
    cell = b.find("numatune/memnode").get("nodeset")

    status, listing, _ = cli("list", "--format", "json")
    assert status == 0
    b_uuid = next(
        g["instance_uuid"] for g in listing["guests"] if g["name"] == "b"
    )
    found = {d["code"]: d for d in listing["discrepancies"]}
    assert set(found) == {
        "usage.device-shared",
        "usage.cpu-shared",
        "usage.pages-over-pool",
    }
    shared = found["usage.device-shared"]
    assert (shared["instance_uuid"], shared["name"]) == (b_uuid, "b")
    assert "guests a and b" in shared["message"]
    assert f"PCI device {gpu}" in shared["message"]
    assert "guests a and b" in found["usage.cpu-shared"]["message"]
    pages = found["usage.pages-over-pool"]["message"]
    # 96 GiB of a and 160 of b on one cell with 224 x 1G pages
    assert f"host cell {cell} has 224 pages of 1048576 KiB" in pages
    assert "hold 256" in pages

    status, text, _ = cli("list")
    assert status == 0
    assert "warning [usage.device-shared]" in text
    # reported, not fixed
    status, again, _ = cli("list", "--format", "json")
    assert again["discrepancies"] == listing["discrepancies"]
