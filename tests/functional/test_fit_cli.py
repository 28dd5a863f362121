"""``nova-slices fit``: the DESIGN.md section 5 contract."""

import json


def test_fit_on_the_default_host(cli):
    status, out, err = cli(
        "fit",
        "--vcpus",
        "4",
        "--memory-mb",
        "4096",
        "--extra-spec",
        "hw:cpu_policy=dedicated",
        "--extra-spec",
        "hw:mem_page_size=1GB",
        "--extra-spec",
        "hw:numa_node.0=3",
        "--format",
        "json",
    )
    assert status == 0, err
    assert out["fits"] is True
    [cell] = out["cells"]
    assert (
        cell["guest_cell"],
        cell["host_cell"],
        cell["memory_mb"],
        cell["pagesize_kb"],
    ) == (0, 3, 4096, 1048576)
    assert set(cell["cpu_pinning"]) == {"0", "1", "2", "3"}
    assert all(
        48 <= p <= 63 or 112 <= p <= 127 for p in cell["cpu_pinning"].values()
    )
    assert cell["emulator_cpus"] == [] and out["pci_devices"] == []


def test_usage_file_and_rejection(cli, tmp_path):
    usage = tmp_path / "usage.json"
    usage.write_text(
        json.dumps(
            {
                "cells": {
                    "3": {
                        "pinned_cpus": list(range(48, 64)),
                        "cpu_usage": 0,
                        "memory_mb": 4096,
                        "pages": {"2048": 1024},
                    }
                },
                "pci_devices_in_use": ["0000:3b:00.0"],
            }
        )
    )
    status, out, _ = cli(
        "fit",
        "--vcpus",
        "20",
        "--memory-mb",
        "4096",
        "--extra-spec",
        "hw:cpu_policy=dedicated",
        "--extra-spec",
        "hw:numa_node.0=3",
        "--usage-json",
        str(usage),
        "--format",
        "json",
    )
    assert status == 1
    assert out["fits"] is False
    [reason] = out["reasons"]
    assert (
        reason["code"],
        reason["host_cell"],
        reason["requested"],
        reason["available"],
    ) == ("numa.not-enough-pcpus", 3, 20, 16)


def test_pinned_cell_missing_and_bad_usage(cli, tmp_path):
    status, out, _ = cli(
        "fit",
        "--vcpus",
        "2",
        "--memory-mb",
        "1024",
        "--extra-spec",
        "hw:numa_node.0=7",
        "--format",
        "json",
    )
    assert status == 1
    assert out["reasons"][0]["code"] == "numa.pinned-cell-missing"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    status, out, _ = cli(
        "fit",
        "--vcpus",
        "2",
        "--memory-mb",
        "1024",
        "--usage-json",
        str(bad),
        "--format",
        "json",
    )
    assert status == 2 and out["errors"][0]["code"] == "usage.invalid"


def test_invalid_request_is_exit_2(cli):
    status, out, _ = cli(
        "fit",
        "--vcpus",
        "4",
        "--memory-mb",
        "4096",
        "--extra-spec",
        "hw:numa_nodes=3",
        "--format",
        "json",
    )
    assert status == 2
    assert out["errors"][0]["code"] == "request.numa-asymmetric"


def test_usage_must_describe_this_host(cli, tmp_path):
    usage = tmp_path / "usage.json"
    # CPUs 24 and 25 are cell 1's on the shipped host, not cell 3's
    usage.write_text(json.dumps({"cells": {"3": {"pinned_cpus": [24, 25]}}}))
    status, out, _ = cli(
        "fit",
        "--vcpus",
        "2",
        "--memory-mb",
        "1024",
        "--usage-json",
        str(usage),
        "--format",
        "json",
    )
    assert status == 2
    assert out["errors"][0]["code"] == "usage.invalid"
    assert out["errors"][0]["value"] == [24, 25]
