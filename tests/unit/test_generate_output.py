"""What ``generate-slices`` writes: templates and the carried configuration.

The templates are rendered by the project's renderer (sandboxed jinja2),
validated against libvirt's domain.rng and checked against the host, as
every spawn does; what each rendered domain holds of the host (read back
with the reconciler's own reader) must be what the plan gave its slice.
The configuration is read back by oslo.config and the slice tree loader,
and what is carried over from the input configuration is checked against
real configuration files for the shipped hosts.
"""

import os
import pathlib
import shutil
import uuid

import pytest
from lxml import etree

from nova_slices import conf as conf_mod
from nova_slices import data
from nova_slices.cmd.generate import carry_conf, configured_taken
from nova_slices.devices.mdev_config import MdevTypeConfig
from nova_slices.errors import NovaSlicesError
from nova_slices.host.devices import HostDevices
from nova_slices.slices import generate
from nova_slices.slices.generate_conf import carry, host_selection
from nova_slices.slices.generate_options import parse_options
from nova_slices.slices.generate_render import render
from nova_slices.slices.tree import load_tree
from nova_slices.virt import schema
from nova_slices.virt.host_check import check_domain
from nova_slices.virt.templates import render_slice_template
from tests import slicecheck
from tests.unit.test_generate_slices import HOSTS, checked
from tests.unit.test_templates import make_context

TEMPLATES = pathlib.Path(data.templates_dir())
BASE = (TEMPLATES / "_base.xml.j2").read_text()
BUNDLES = TEMPLATES.parent / "etc" / "hosts"


def write(tmp_path, plan, carried=None):
    carried = carried or carry(
        [], set(), [("host_bundle", "x")], [], [], (), HostDevices(), []
    )
    out = tmp_path / "out"
    for name, text in render(
        plan, carried, BASE, str(out), "h", "cmd"
    ).items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return out


RENDERED = [
    ("gpu8-2s", {}),
    ("gpu8-2s", {"page_size": "4K"}),
    ("nfv-snc-2s", {"page_size": "2M"}),
    ("amd-16-cells", {}),
    ("512-threads-uneven", {"reserved_cores": "2"}),
    ("vircaps-hmat", {}),
]


@pytest.mark.parametrize(
    "host,flags",
    RENDERED,
    ids=[f"{h}-{'-'.join(f.values()) or 'default'}" for h, f in RENDERED],
)
def test_templates_render_what_was_planned(host, flags, tmp_path):
    topology, devices, taken = HOSTS[host]()
    plan = generate.plan(topology, devices, parse_options(**flags), taken)
    out = write(tmp_path, plan)
    addresses = {d.address for d in devices.pci}
    held = {}
    for s in plan.slices:
        xml = render_slice_template(
            str(out / "templates" / f"slice_{s.name}.xml.j2"),
            make_context(instance={"uuid": str(uuid.uuid4()), "name": s.name}),
        )
        schema.validate_domain_xml(xml)
        domain = etree.fromstring(xml.encode())
        assert check_domain(domain, topology, addresses) == []
        held[s.name] = slicecheck.from_domain(s.parent, domain)
        # the guest's CPU topology multiplies out to its vCPUs
        top = domain.find("cpu/topology")
        assert int(top.get("sockets")) * int(top.get("cores")) * int(
            top.get("threads")
        ) == int(domain.findtext("vcpu"))
    planned = checked(plan)
    if plan.base_pages:
        # the reconciler counts hugepages only: base-page memory is the
        # kernel's to place (numatune strict still binds it to the cell)
        for s in planned.values():
            s["pages"] = {}
    assert held == planned


def test_base_pages_leave_out_hugepages(tmp_path):
    topology, devices, taken = HOSTS["gpu8-2s"]()
    # 30 GiB of 4K pages, 1000 MiB kept: 29720 MiB, 14860 per GPU
    plan = generate.plan(
        topology,
        devices,
        parse_options(page_size="4K", reserved_memory_mb="1000"),
        taken,
    )
    out = write(tmp_path, plan)
    text = (out / "templates" / "slice_cell0-gpu0.xml.j2").read_text()
    assert '"memory_mib": 14860' in text and "hugepage_kib = 0" in text
    xml = render_slice_template(
        str(out / "templates" / "slice_cell0-gpu0.xml.j2"), make_context()
    )
    domain = etree.fromstring(xml.encode())
    assert domain.find("memoryBacking/hugepages") is None
    assert (domain.findtext("memory"), domain.find("memory").get("unit")) == (
        "14860",
        "MiB",
    )


def test_the_configuration_reads_back(tmp_path):
    topology, devices, taken = HOSTS["amd-16-cells"]()
    plan = generate.plan(topology, devices, taken=taken)
    out = write(tmp_path, plan)
    conf = conf_mod.make_conf(["--config-file", str(out / "nova-slices.conf")])
    assert conf.libvirt.slice_template_dir == str(out / "templates")
    tree = load_tree(conf)
    assert [
        (s.name, s.resource_class, s.parent) for s in tree.slices.values()
    ] == [(s.name, s.resource_class, s.parent) for s in plan.slices]
    text = (out / "nova-slices.conf").read_text()
    assert text.isascii()
    assert "#   +- socket0 " in text


# -- the carried configuration ------------------------------------------------


def carried_for(conf_text, tmp_path, bundle="gpu8-2s", **flags):
    """(carried sections as a dict, notes) of ``conf_text`` on a shipped
    bundle, with the GPUs ``flags`` choose."""
    path = tmp_path / "in.conf"
    path.write_text(conf_text)
    conf = conf_mod.make_conf(["--config-file", str(path)])
    topology, devices, _ = HOSTS[bundle]()
    mdev_types, taken = configured_taken(conf, topology, devices)
    plan = generate.plan(topology, devices, parse_options(**flags), taken)
    carried = carry_conf(conf, devices, mdev_types, plan.gpus)
    return {name: list(lines) for name, lines in carried.sections}, list(
        carried.notes
    )


def test_nfv_snc_2s_is_carried_without_what_slices_take(tmp_path):
    text = (BUNDLES / "nfv-snc-2s" / "nova-slices.conf").read_text()
    sections, notes = carried_for(text, tmp_path, "nfv-snc-2s")
    assert sections == {
        "DEFAULT": [("reserved_host_memory_mb", "4096")],
        "libvirt": [("host_bundle", "nfv-snc-2s")],
        "pci": [
            (
                "device_spec",
                '{"vendor_id": "15b3", "product_id": "101e", '
                '"physical_network": "physnet1", "resource_class": '
                '"CUSTOM_NIC_VF", "traits": "HW_NIC_SRIOV"}',
            ),
            (
                "alias",
                '{"name": "vf", "vendor_id": "15b3", "product_id": "101e", '
                '"device_type": "type-VF", "numa_policy": "required"}',
            ),
        ],
        "devices": [("enabled_mdev_types", "nvidia-222")],
        "mdev_nvidia-222": [
            ("device_addresses", "0000:b1:00.0"),
            ("mdev_class", "VGPU"),
        ],
    }
    assert [n.split(" = ")[0] for n in notes] == [
        "[compute] cpu_dedicated_set",
        "[compute] cpu_shared_set",
        "[pci] device_spec",
        "[pci] alias",
    ]
    assert "it allowed 0000:31:00.0, now slice GPU(s)" in notes[2]


GPU8_CONF = (
    "[libvirt]\nhost_bundle = gpu8-2s\n"
    'slice_spec = {"name": "old", "resource_class": "CUSTOM_OLD", '
    '"template_file": "old.j2"}\n'
    "[DEFAULT]\nhost = first\nhost = compute-7\n"
    "reserved_huge_pages = node:0,size:1GB,count:4\n"
    "[keystone_authtoken]\nwww_authenticate_uri = http://keystone:5000\n"
    "[vgpu_nvidia-222]\ndevice_addresses = 0000:86:00.0\n"
    "[devices]\nenabled_vgpu_types = nvidia-222\n"
)


def test_gpu8_2s_with_legacy_names_and_other_sections(tmp_path):
    sections, notes = carried_for(GPU8_CONF, tmp_path)
    assert sections == {
        "DEFAULT": [
            ("host", "compute-7"),
            ("reserved_huge_pages", "node:0,size:1GB,count:4"),
        ],
        "libvirt": [("host_bundle", "gpu8-2s")],
        "keystone_authtoken": [
            ("www_authenticate_uri", "http://keystone:5000")
        ],
        "devices": [("enabled_mdev_types", "nvidia-222")],
        "mdev_nvidia-222": [
            ("device_addresses", "0000:86:00.0"),
            ("mdev_class", "VGPU"),
        ],
    }
    assert notes == []


def test_reserved_huge_pages_are_left_to_the_host(tmp_path):
    path = tmp_path / "in.conf"
    path.write_text(GPU8_CONF)
    conf = conf_mod.make_conf(["--config-file", str(path)])
    topology, devices, _ = HOSTS["gpu8-2s"]()
    _, taken = configured_taken(conf, topology, devices)
    plan = generate.plan(topology, devices, taken=taken)
    # cell 0 keeps 4 of its 224 1G pages: 110 per GPU there, 112 elsewhere
    assert [s.memory_mib // 1024 for s in plan.slices if s.level == "gpu"] == [
        110,
        110,
        *[112] * 6,
    ]


def test_a_gpu_taken_from_its_mdev_type(tmp_path):
    sections, notes = carried_for(GPU8_CONF, tmp_path, gpus=["86:00.0"])
    assert "devices" not in sections and "mdev_nvidia-222" not in sections
    assert notes == [
        "mdev type nvidia-222 left out of [devices] enabled_mdev_types: "
        "its device(s) 0000:86:00.0 are slice GPUs"
    ]


def test_an_mdev_type_keeps_its_other_parents():
    two = MdevTypeConfig(
        "nvidia-35", "CUSTOM_GPU_SMALL", None, ("0000:84:00.0", "0000:85:00.0")
    )
    carried = carry(
        [], set(), [], [], [], (two,), HostDevices(), ["0000:84:00.0"]
    )
    assert dict(carried.sections)["mdev_nvidia-35"] == (
        ("device_addresses", "0000:85:00.0"),
        ("mdev_class", "CUSTOM_GPU_SMALL"),
    )
    assert carried.notes == (
        "[mdev_nvidia-35] no longer offers 0000:84:00.0: slice GPU(s)",
    )


def test_a_device_spec_wider_than_the_gpus_is_refused(tmp_path):
    spec = '{"address": "*:*:00.0"}'
    with pytest.raises(NovaSlicesError) as err:
        carried_for(GPU8_CONF + f"[pci]\ndevice_spec = {spec}\n", tmp_path)
    assert err.value.code == "generate.device-spec-overlaps"
    assert err.value.message.startswith(
        f"[pci] device_spec = {spec} allows slice GPU 0000:17:00.0 and "
        "also 0000:3b:00.0, 0000:86:00.0, which are not slice GPUs"
    )


def test_host_selection_resolves(tmp_path):
    def selection(text):
        path = tmp_path / "sel.conf"
        path.write_text(text)
        return host_selection(
            conf_mod.make_conf(["--config-file", str(path)]).libvirt
        )

    shipped = BUNDLES / "nfv-snc-2s"
    assert selection(f"[libvirt]\nhost_bundle = {shipped}\n") == [
        ("host_bundle", "nfv-snc-2s")
    ]
    bundle = str(tmp_path / "mine")
    shutil.copytree(shipped, bundle)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert selection(
            "[libvirt]\nhost_bundle = ./mine\ncapabilities_file = c.xml\n"
        ) == [
            ("host_bundle", bundle),
            ("capabilities_file", str(tmp_path / "c.xml")),
        ]
    finally:
        os.chdir(cwd)
    assert selection("[libvirt]\nconnection_uri = qemu:///system\n") == [
        ("connection_uri", "qemu:///system")
    ]
