"""``nova-slices topology`` on the embedded default and on files."""

import os

from lxml import etree

from tests.functional.conftest import BUNDLE_CONF
from tests.unit.test_capabilities import DATA

SAMPLE = os.path.join(DATA, "vircaps-x86_64-basic.xml")


def test_default_host_json_contract(cli):
    status, out, err = cli("topology", "--format", "json")
    assert status == 0, err
    assert out["sockets"] == [0, 1]
    cell = out["cells"][2]
    assert (cell["id"], cell["socket"], cell["memory_mb"]) == (2, 1, 262144)
    assert cell["cpus"][:3] == [32, 33, 34] and len(cell["cpus"]) == 32
    assert cell["siblings"][0] == [32, 96]
    assert cell["pages"] == [
        {"size_kb": 4, "total": 7864320},
        {"size_kb": 2048, "total": 1024},
        {"size_kb": 1048576, "total": 224},
    ]
    assert cell["distances"] == {"0": 21, "1": 21, "2": 10, "3": 12}
    gpus = {d["address"]: d for d in out["pci_devices"]}
    gpu = gpus["0000:98:00.0"]
    assert {
        k: gpu[k]
        for k in (
            "vendor_id",
            "product_id",
            "numa_node",
            "socket",
            "dev_type",
            "parent_address",
            "mdev_types",
        )
    } == {
        "vendor_id": "10de",
        "product_id": "20b5",
        "numa_node": 2,
        "socket": 1,
        "dev_type": "type-PCI",
        "parent_address": None,
        "mdev_types": [],
    }
    vf = gpus["0000:3b:00.2"]
    assert (vf["dev_type"], vf["parent_address"]) == (
        "type-VF",
        "0000:3b:00.0",
    )
    assert out["restrictions"]["reserved_host_memory_mb"] == 512


def test_text_tree(cli):
    status, out, _ = cli("topology")
    assert status == 0
    assert "socket 1\n  cell 2: 262144 MiB (256 GiB)" in out
    assert "0000:3b:00.0 15b3:101b type-PF, 8 VF(s)" in out
    assert "[32,96]" in out


def test_file_with_node_devices(cli):
    status, out, _ = cli(
        "topology",
        "--capabilities-xml",
        SAMPLE,
        "--nodedev-xml",
        os.path.join(DATA, "pci_1002_71c4.xml"),
        "--format",
        "json",
    )
    assert status == 0
    assert [c["socket"] for c in out["cells"]] == [0, 1, 2, 3]
    assert out["pci_devices"][0]["socket"] == 1
    assert "restrictions" not in out


def test_memory_only_cell_in_json(cli):
    status, out, _ = cli(
        "topology",
        "--capabilities-xml",
        os.path.join(DATA, "vircaps-x86_64-hmat.xml"),
        "--format",
        "json",
    )
    assert status == 0
    assert out["cells"][1]["cpus"] == []
    assert out["cells"][1]["memory_only"] is True


def test_svg(cli):
    status, out, _ = cli("topology", "--format", "svg")
    assert status == 0
    root = etree.fromstring(out.encode())
    assert root.tag.endswith("svg")


def test_bad_inputs_exit_2(cli, tmp_path):
    status, out, _ = cli(
        "topology",
        "--capabilities-xml",
        str(tmp_path / "nope.xml"),
        "--format",
        "json",
    )
    assert status == 2
    assert out["errors"][0]["code"] == "host.file-unreadable"
    broken = tmp_path / "broken.xml"
    broken.write_text("<capabilities><host>")
    status, out, _ = cli(
        "topology", "--capabilities-xml", str(broken), "--format", "json"
    )
    assert status == 2
    assert out["errors"][0]["code"] == "host.malformed-capabilities"
    status, out, _ = cli(
        "topology",
        "--capabilities-xml",
        os.path.join(DATA, "vircaps-basic-4-4-2G.xml"),
        "--format",
        "json",
    )
    assert status == 2
    assert out["errors"][0]["code"] == "host.duplicate-cpu"


def test_restrictions_checked_on_the_configured_host(cli, tmp_path):
    extra = tmp_path / "extra.conf"
    extra.write_text("[compute]\ncpu_dedicated_set = 100-200\n")
    status, out, err = cli(
        "topology", "--format", "json", config=[BUNDLE_CONF, extra]
    )
    assert status == 2
    assert out["errors"][0]["code"] == "config.cpus-not-on-host"
    assert "128-200" in out["errors"][0]["message"]
