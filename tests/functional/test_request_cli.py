"""``nova-slices request``: the normalized request or the errors."""


def test_normalized_request_json(cli):
    status, out, err = cli(
        "request",
        "--vcpus",
        "4",
        "--memory-mb",
        "4096",
        "--extra-spec",
        "hw:cpu_policy=dedicated",
        "--extra-spec",
        "hw:numa_nodes=2",
        "--extra-spec",
        "hw:numa_node.1=3",
        "--extra-spec",
        "hw:mem_page_size=large",
        "--image-property",
        "hw_mem_page_size=2048",
        "--format",
        "json",
    )
    assert status == 0, err
    assert out["cells"] == [
        {
            "id": 0,
            "cpus": [0, 1],
            "pcpus": [0, 1],
            "memory_mb": 2048,
            "host_cell": None,
        },
        {
            "id": 1,
            "cpus": [2, 3],
            "pcpus": [2, 3],
            "memory_mb": 2048,
            "host_cell": 3,
        },
    ]
    assert (
        out["cpu_policy"],
        out["cpu_thread_policy"],
        out["emulator_threads_policy"],
        out["pagesize"],
        out["pci_numa_affinity_policy"],
    ) == ("dedicated", None, None, 2048, None)


def test_shared_guest_without_numa_has_no_cells(cli):
    status, out, _ = cli(
        "request", "--vcpus", "2", "--memory-mb", "512", "--format", "json"
    )
    assert status == 0
    assert out["cells"] == [] and out["cpu_policy"] is None


def test_errors_exit_2_with_codes(cli):
    status, out, _ = cli(
        "request",
        "--vcpus",
        "4",
        "--memory-mb",
        "4096",
        "--extra-spec",
        "hw:numa_nodes=2",
        "--extra-spec",
        "hw:numa_cpus.0=0-1",
        "--extra-spec",
        "hw:numa_cpus.1=1-3",
        "--extra-spec",
        "hw:numa_mem.0=2048",
        "--extra-spec",
        "hw:numa_mem.1=2048",
        "--format",
        "json",
    )
    assert status == 2
    [error] = out["errors"]
    assert error["code"] == "request.numa-cpus-duplicate"
    assert error["key"] == "hw:numa_cpus.1"
    assert "vCPU 1" in error["message"]


def test_text_output_and_bad_flag(cli):
    status, out, _ = cli(
        "request",
        "--vcpus",
        "4",
        "--memory-mb",
        "4096",
        "--extra-spec",
        "hw:cpu_policy=mixed",
        "--extra-spec",
        "hw:cpu_dedicated_mask=^0",
        "--extra-spec",
        "hw:watchdog_action=reset",
    )
    assert status == 0
    assert "guest cell 0: vCPUs 0-3, pinned 1-3, 4096 MB" in out
    assert "not interpreted here: hw:watchdog_action" in out
