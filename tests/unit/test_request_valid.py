"""Flavor/image combinations Nova accepts, with the normalized request.

Each row: (id, vCPUs, MB, flavor extra specs, image properties, the
complete ``GuestRequest.to_dict()`` written by hand).  ``request()``
fills in the fields a row does not mention with their "nothing asked
for" value, so every row still states the whole output.
test_request_vs_nova.py runs every row against the real Nova too.
"""

from typing import NamedTuple

import pytest

from nova_slices.request.build import build_request


class Good(NamedTuple):
    id: str
    vcpus: int
    memory_mb: int
    specs: dict
    props: dict
    expected: dict


def request(vcpus, memory_mb, cells=(), **fields):
    """The to_dict() of a request; unnamed fields are unset."""
    out = {
        "vcpus": vcpus,
        "memory_mb": memory_mb,
        "cells": list(cells),
        "cpu_policy": None,
        "cpu_thread_policy": None,
        "emulator_threads_policy": None,
        "realtime_cpus": None,
        "pagesize": None,
        "locked_memory": None,
        "pci_numa_affinity_policy": None,
        "pci_aliases": [],
        "resources": [],
        "traits": [],
        "group_policy": None,
        "ignored": [],
    }
    unknown = set(fields) - set(out)
    assert not unknown, f"not a request field: {unknown}"
    out.update(fields)
    return out


def cell(id, cpus, memory_mb, pcpus=(), host_cell=None):
    return {
        "id": id,
        "cpus": list(cpus),
        "pcpus": list(pcpus),
        "memory_mb": memory_mb,
        "host_cell": host_cell,
    }


def resource(group, rc, amount):
    return {"group": group, "resource_class": rc, "amount": amount}


def trait(group, name, value):
    return {"group": group, "trait": name, "value": value}


D = {"hw:cpu_policy": "dedicated"}
TWO = {"hw:numa_nodes": "2"}
HT = "trait:HW_CPU_HYPERTHREADING"
ALL4 = [0, 1, 2, 3]

VALID = [
    Good("no-numa-request", 2, 512, {}, {}, request(2, 512)),
    Good(
        "explicit-shared",
        2,
        512,
        {"hw:cpu_policy": "shared"},
        {},
        request(2, 512, cpu_policy="shared"),
    ),
    Good(
        "one-cell-shared",
        4,
        4096,
        {"hw:numa_nodes": "1"},
        {},
        request(4, 4096, [cell(0, ALL4, 4096)]),
    ),
    Good(
        "symmetric-two-cells",
        4,
        4096,
        TWO,
        {},
        request(4, 4096, [cell(0, [0, 1], 2048), cell(1, [2, 3], 2048)]),
    ),
    Good(
        "image-symmetric-four-cells",
        8,
        8192,
        {},
        {"hw_numa_nodes": "4"},
        request(
            8,
            8192,
            [
                cell(0, [0, 1], 2048),
                cell(1, [2, 3], 2048),
                cell(2, [4, 5], 2048),
                cell(3, [6, 7], 2048),
            ],
        ),
    ),
    Good(
        "asymmetric-flavor",
        6,
        6144,
        {
            "hw:numa_nodes": "2",
            "hw:numa_cpus.0": "0-1",
            "hw:numa_cpus.1": "2-5",
            "hw:numa_mem.0": "2048",
            "hw:numa_mem.1": "4096",
        },
        {},
        request(6, 6144, [cell(0, [0, 1], 2048), cell(1, [2, 3, 4, 5], 4096)]),
    ),
    Good(
        "asymmetric-image-interleaved",
        4,
        4096,
        {},
        {
            "hw_numa_nodes": "2",
            "hw_numa_cpus.0": "0,2",
            "hw_numa_cpus.1": "1,3",
            "hw_numa_mem.0": "1024",
            "hw_numa_mem.1": "3072",
        },
        request(4, 4096, [cell(0, [0, 2], 1024), cell(1, [1, 3], 3072)]),
    ),
    Good(
        "dedicated-implicit-cell",
        4,
        4096,
        D,
        {},
        request(4, 4096, [cell(0, ALL4, 4096, ALL4)], cpu_policy="dedicated"),
    ),
    Good(
        "dedicated-two-cells-1gb-pages",
        8,
        8192,
        {**D, **TWO, "hw:mem_page_size": "1GB"},
        {},
        request(
            8,
            8192,
            [
                cell(0, ALL4, 4096, ALL4),
                cell(1, [4, 5, 6, 7], 4096, [4, 5, 6, 7]),
            ],
            cpu_policy="dedicated",
            pagesize=1048576,
        ),
    ),
    Good(
        "mixed-dedicated-mask",
        4,
        4096,
        {"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "^0"},
        {},
        request(4, 4096, [cell(0, ALL4, 4096, [1, 2, 3])], cpu_policy="mixed"),
    ),
    Good(
        "mixed-realtime-mask",
        4,
        4096,
        {
            "hw:cpu_policy": "mixed",
            "hw:cpu_realtime": "yes",
            "hw:cpu_realtime_mask": "^0-1",
        },
        {},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, [2, 3])],
            cpu_policy="mixed",
            realtime_cpus=[2, 3],
        ),
    ),
    Good(
        "mixed-two-asymmetric-cells",
        4,
        4096,
        {
            "hw:cpu_policy": "mixed",
            "hw:cpu_dedicated_mask": "2-3",
            "hw:numa_nodes": "2",
            "hw:numa_cpus.0": "0,2",
            "hw:numa_cpus.1": "1,3",
            "hw:numa_mem.0": "2048",
            "hw:numa_mem.1": "2048",
        },
        {},
        request(
            4,
            4096,
            [cell(0, [0, 2], 2048, [2]), cell(1, [1, 3], 2048, [3])],
            cpu_policy="mixed",
        ),
    ),
    Good(
        "dedicated-realtime-caret-mask",
        4,
        4096,
        {**D, "hw:cpu_realtime": "true", "hw:cpu_realtime_mask": "^0"},
        {},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, ALL4)],
            cpu_policy="dedicated",
            realtime_cpus=[1, 2, 3],
        ),
    ),
    Good(
        "image-realtime-mask-wins",
        4,
        4096,
        {**D, "hw:cpu_realtime": "true", "hw:cpu_realtime_mask": "^0"},
        {"hw_cpu_realtime_mask": "^0-1"},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, ALL4)],
            cpu_policy="dedicated",
            realtime_cpus=[2, 3],
        ),
    ),
    Good(
        "realtime-every-vcpu-emulator-isolated",
        2,
        2048,
        {
            **D,
            "hw:cpu_realtime": "true",
            "hw:emulator_threads_policy": "isolate",
        },
        {},
        request(
            2,
            2048,
            [cell(0, [0, 1], 2048, [0, 1])],
            cpu_policy="dedicated",
            emulator_threads_policy="isolate",
            realtime_cpus=[0, 1],
        ),
    ),
    Good(
        "emulator-share-without-pinning",
        2,
        2048,
        {"hw:emulator_threads_policy": "share"},
        {},
        request(2, 2048, emulator_threads_policy="share"),
    ),
    Good(
        "hugepages-implicit-cell",
        4,
        4096,
        {"hw:mem_page_size": "large"},
        {},
        request(4, 4096, [cell(0, ALL4, 4096)], pagesize="large"),
    ),
    Good(
        "page-size-with-unit",
        4,
        4096,
        {"hw:mem_page_size": "2MB"},
        {},
        request(4, 4096, [cell(0, ALL4, 4096)], pagesize=2048),
    ),
    Good(
        "image-1gb-refines-large",
        4,
        4096,
        {"hw:mem_page_size": "large"},
        {"hw_mem_page_size": "1GB"},
        request(4, 4096, [cell(0, ALL4, 4096)], pagesize=1048576),
    ),
    Good(
        "image-small-refines-any",
        4,
        4096,
        {"hw:mem_page_size": "any"},
        {"hw_mem_page_size": "small"},
        request(4, 4096, [cell(0, ALL4, 4096)], pagesize="small"),
    ),
    Good(
        "flavor-any-stays-any",
        4,
        4096,
        {"hw:mem_page_size": "any"},
        {},
        request(4, 4096, [cell(0, ALL4, 4096)], pagesize="any"),
    ),
    # Nova 34 (get_cpu_thread_policy_constraint): a flavor that says
    # prefer keeps prefer, ``flavor_policy or image_policy``; the image
    # is only read when the flavor is silent.
    Good(
        "image-isolate-does-not-override-prefer",
        4,
        4096,
        {**D, "hw:cpu_thread_policy": "prefer"},
        {"hw_cpu_thread_policy": "isolate"},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, ALL4)],
            cpu_policy="dedicated",
            cpu_thread_policy="prefer",
        ),
    ),
    Good(
        "image-thread-policy-when-flavor-silent",
        4,
        4096,
        D,
        {"hw_cpu_thread_policy": "require"},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, ALL4)],
            cpu_policy="dedicated",
            cpu_thread_policy="require",
        ),
    ),
    Good(
        "image-cpu-policy-when-flavor-silent",
        4,
        4096,
        {},
        {"hw_cpu_policy": "dedicated"},
        request(4, 4096, [cell(0, ALL4, 4096, ALL4)], cpu_policy="dedicated"),
    ),
    Good(
        "flavor-dedicated-beats-image-shared",
        4,
        4096,
        D,
        {"hw_cpu_policy": "shared"},
        request(4, 4096, [cell(0, ALL4, 4096, ALL4)], cpu_policy="dedicated"),
    ),
    Good(
        "resources-pcpu-implies-dedicated",
        4,
        4096,
        {"resources:PCPU": "4"},
        {},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, ALL4)],
            cpu_policy="dedicated",
            resources=[resource("", "PCPU", 4)],
        ),
    ),
    Good(
        "resources-pcpu-with-isolated-emulator",
        4,
        4096,
        {"resources:PCPU": "5", "hw:emulator_threads_policy": "isolate"},
        {},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, ALL4)],
            cpu_policy="dedicated",
            emulator_threads_policy="isolate",
            resources=[resource("", "PCPU", 5)],
        ),
    ),
    Good(
        "resources-vcpu-implies-shared",
        4,
        4096,
        {"resources:VCPU": "4"},
        {},
        request(
            4, 4096, cpu_policy="shared", resources=[resource("", "VCPU", 4)]
        ),
    ),
    Good(
        "hyperthreading-forbidden-is-isolate",
        4,
        4096,
        {**D, HT: "forbidden"},
        {},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, ALL4)],
            cpu_policy="dedicated",
            cpu_thread_policy="isolate",
            traits=[trait("", "HW_CPU_HYPERTHREADING", "forbidden")],
        ),
    ),
    Good(
        "granular-hyperthreading-required-is-require",
        4,
        4096,
        {"resources:PCPU": "4", "trait1:HW_CPU_HYPERTHREADING": "required"},
        {},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, ALL4)],
            cpu_policy="dedicated",
            cpu_thread_policy="require",
            resources=[resource("", "PCPU", 4)],
            traits=[trait("1", "HW_CPU_HYPERTHREADING", "required")],
        ),
    ),
    Good(
        "image-hyperthreading-trait-required",
        4,
        4096,
        D,
        {HT: "required"},
        request(
            4,
            4096,
            [cell(0, ALL4, 4096, ALL4)],
            cpu_policy="dedicated",
            cpu_thread_policy="require",
        ),
    ),
    Good(
        "granular-resources-and-traits",
        2,
        2048,
        {
            "resources:VCPU": "2",
            "resources1:CUSTOM_SLICE_1_GPU_V1": "1",
            "trait1:CUSTOM_X": "required",
            "trait:HW_CPU_X86_AVX2": "required",
            "nova_slices:slice_class": "CUSTOM_SLICE_1_GPU_V1",
        },
        {},
        request(
            2,
            2048,
            cpu_policy="shared",
            resources=[
                resource("", "VCPU", 2),
                resource("1", "CUSTOM_SLICE_1_GPU_V1", 1),
            ],
            traits=[
                trait("", "HW_CPU_X86_AVX2", "required"),
                trait("1", "CUSTOM_X", "required"),
            ],
        ),
    ),
    Good(
        "group-policy-isolate",
        2,
        2048,
        {
            "resources_NIC:CUSTOM_NIC_VF": "1",
            "resources_GPU:VGPU": "1",
            "group_policy": "isolate",
        },
        {},
        request(
            2,
            2048,
            resources=[
                resource("_GPU", "VGPU", 1),
                resource("_NIC", "CUSTOM_NIC_VF", 1),
            ],
            group_policy="isolate",
        ),
    ),
    Good(
        "pin-one-of-two-cells",
        4,
        4096,
        {**TWO, "hw:numa_node.1": "3"},
        {},
        request(
            4,
            4096,
            [cell(0, [0, 1], 2048), cell(1, [2, 3], 2048, host_cell=3)],
        ),
    ),
    Good(
        "pin-every-cell-crossed",
        4,
        4096,
        {**D, **TWO, "hw:numa_node.0": "1", "hw:numa_node.1": "0"},
        {},
        request(
            4,
            4096,
            [
                cell(0, [0, 1], 2048, [0, 1], host_cell=1),
                cell(1, [2, 3], 2048, [2, 3], host_cell=0),
            ],
            cpu_policy="dedicated",
        ),
    ),
    Good(
        "pin-alone-implies-one-cell",
        4,
        4096,
        {"hw:numa_node.0": "2"},
        {},
        request(4, 4096, [cell(0, ALL4, 4096, host_cell=2)]),
    ),
    Good(
        "image-pin-repeats-flavor-pin",
        4,
        4096,
        {**TWO, "hw:numa_node.0": "1"},
        {"hw_numa_node.0": "1"},
        request(
            4,
            4096,
            [cell(0, [0, 1], 2048, host_cell=1), cell(1, [2, 3], 2048)],
        ),
    ),
    Good(
        "image-pins-when-flavor-pins-nothing",
        4,
        4096,
        {},
        {"hw_numa_nodes": "2", "hw_numa_node.1": "0"},
        request(
            4,
            4096,
            [cell(0, [0, 1], 2048), cell(1, [2, 3], 2048, host_cell=0)],
        ),
    ),
    Good(
        "pci-aliases-with-counts",
        2,
        2048,
        {"pci_passthrough:alias": "a1:2, gpu.v100:1"},
        {},
        request(
            2,
            2048,
            pci_aliases=[
                {"alias": "a1", "count": 2},
                {"alias": "gpu.v100", "count": 1},
            ],
        ),
    ),
    Good(
        "pci-policy-from-image",
        2,
        2048,
        {},
        {"hw_pci_numa_affinity_policy": "preferred"},
        request(2, 2048, pci_numa_affinity_policy="preferred"),
    ),
    Good(
        "pci-policy-image-repeats-flavor",
        2,
        2048,
        {"hw:pci_numa_affinity_policy": "socket"},
        {"hw_pci_numa_affinity_policy": "socket"},
        request(2, 2048, pci_numa_affinity_policy="socket"),
    ),
    Good(
        "locked-memory-with-page-size",
        2,
        2048,
        {"hw:mem_page_size": "2048", "hw:locked_memory": "true"},
        {"hw_locked_memory": "yes"},
        request(
            2,
            2048,
            [cell(0, [0, 1], 2048)],
            pagesize=2048,
            locked_memory=True,
        ),
    ),
    Good(
        "locked-memory-off-without-page-size",
        2,
        2048,
        {"hw:locked_memory": "false"},
        {},
        request(2, 2048, locked_memory=False),
    ),
    Good(
        "keys-we-do-not-read-are-listed",
        2,
        2048,
        {"hw:watchdog_action": "reset", "quota:cpu_shares": "1024"},
        {"hw_disk_bus": "virtio", "hw_qemu_guest_agent": "yes"},
        request(
            2,
            2048,
            ignored=[
                "hw:watchdog_action",
                "hw_disk_bus",
                "hw_qemu_guest_agent",
                "quota:cpu_shares",
            ],
        ),
    ),
]

IDS = [row.id for row in VALID]


def _param(row):
    return pytest.param(row, id=row.id)


def test_table_is_sane():
    assert len(IDS) == len(set(IDS)), "duplicate ids"
    assert len(VALID) >= 25


@pytest.mark.parametrize("row", [_param(row) for row in VALID])
def test_normalized_request(row):
    req = build_request(row.vcpus, row.memory_mb, row.specs, row.props)
    assert req.to_dict() == row.expected


@pytest.mark.parametrize("row", VALID, ids=IDS)
def test_cells_account_for_the_flavor(row):
    """Every vCPU in one cell, every MB in one cell, pcpus within cpus."""
    req = build_request(row.vcpus, row.memory_mb, row.specs, row.props)
    if not req.cells:
        return
    cpus = [cpu for c in req.cells for cpu in c.cpus]
    assert sorted(cpus) == list(range(row.vcpus))
    assert sum(c.memory_mb for c in req.cells) == row.memory_mb
    assert all(c.pcpus <= c.cpus for c in req.cells)
    assert [c.id for c in req.cells] == list(range(len(req.cells)))
