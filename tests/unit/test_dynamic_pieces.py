"""The pure pieces of the dynamic path, each on its own.

* what a flavor asks of Placement (Nova's ResourceRequest rules);
* the placement record in a domain's metadata, written and read back;
* usage rebuilt from records, and a conflict naming both guests;
* choosing a Placement candidate with the fitter's devices added;
* the host check of mdev uuids and per-cell page pools.
"""

import pytest
from lxml import etree

from nova_slices.compute.usage import usage_of
from nova_slices.errors import RequestError
from nova_slices.fit.claims import ClaimError, claim
from nova_slices.fit.fitter import fit
from nova_slices.fit.model import Usage
from nova_slices.placement.flavor_claims import choose, merge
from nova_slices.placement.request_groups import flavor_request
from nova_slices.request.build import build_request
from nova_slices.virt import metadata
from nova_slices.virt.guest_xml import GuestDomain, guest_domain
from nova_slices.virt.host_check import check_domain
from tests.unit.test_guest_xml import RESTRICTIONS, TOPOLOGY

ROOT = "root-uuid"


def flavor(vcpus, memory_mb, specs=None, disk_gb=1):
    return flavor_request(build_request(vcpus, memory_mb, specs), disk_gb)


@pytest.mark.parametrize(
    "vcpus, specs, root",
    [
        (4, {}, {"VCPU": 4}),
        (4, {"hw:cpu_policy": "dedicated"}, {"PCPU": 4}),
        (
            4,
            {
                "hw:cpu_policy": "dedicated",
                "hw:emulator_threads_policy": "isolate",
            },
            {"PCPU": 5},
        ),
        (
            4,
            {"hw:cpu_policy": "mixed", "hw:cpu_dedicated_mask": "^0-1"},
            {"VCPU": 2, "PCPU": 2},
        ),
    ],
)
def test_root_resources_follow_nova(vcpus, specs, root):
    got = flavor(vcpus, 2048, specs)
    assert dict(got.root) == {**root, "MEMORY_MB": 2048, "DISK_GB": 1}
    assert got.groups[0].suffix == ""
    assert dict(got.groups[0].resources) == dict(got.root)


def test_disk_zero_asks_no_disk():
    assert "DISK_GB" not in dict(flavor(1, 512, disk_gb=0).root)


def test_device_groups_and_query():
    got = flavor(
        2,
        2048,
        {
            "resources:VGPU": "1",
            "resources_NIC:CUSTOM_NIC_VF": "1",
            "trait_NIC:HW_NIC_SRIOV": "required",
            "trait:CUSTOM_FAST": "forbidden",
            "group_policy": "isolate",
        },
    )
    assert [g.suffix for g in got.groups] == ["", "_NIC"]
    assert dict(got.groups[0].resources)["VGPU"] == 1
    assert got.groups[0].forbidden == ("CUSTOM_FAST",)
    assert [dict(g.resources) for g in got.device_groups] == [
        {"VGPU": 1},
        {"CUSTOM_NIC_VF": 1},
    ]
    params = dict(got.query_params(ROOT))
    assert params["resources_NIC"] == "CUSTOM_NIC_VF:1"
    assert params["required_NIC"] == "HW_NIC_SRIOV"
    assert params["required"] == "!CUSTOM_FAST"
    assert params["in_tree"] == params["in_tree_NIC"] == ROOT
    assert params["group_policy"] == "isolate"


def test_without_numbered_groups_no_group_policy():
    assert "group_policy" not in dict(flavor(1, 512).query_params(ROOT))


@pytest.mark.parametrize(
    "specs, code",
    [
        ({"resources:PCPU": "2"}, "request.dynamic-root-resources"),
        ({"resources:MEMORY_MB": "0"}, "request.dynamic-root-resources"),
        ({"trait_X:CUSTOM_Y": "required"}, "request.trait-without-group"),
    ],
)
def test_bad_flavors_are_refused(specs, code):
    with pytest.raises(RequestError) as exc:
        flavor(2, 1024, specs)
    assert exc.value.code == code
    assert exc.value.key in specs


def test_negative_disk_is_refused():
    with pytest.raises(RequestError) as exc:
        flavor(1, 512, disk_gb=-1)
    assert exc.value.code == "request.disk-invalid"


# -- the record in the domain's metadata -------------------------------------


def placed(vcpus, memory_mb, specs, usage=None):
    request = build_request(vcpus, memory_mb, specs)
    return request, fit(TOPOLOGY, request, usage, RESTRICTIONS)


def record(name, placement, pci=()):
    return metadata.GuestRecord(
        name,
        f"uuid-{name}",
        None,
        None,
        None,
        pci or placement.pci_devices,
        (),
        placement.cells,
        (("PCPU", 5), ("MEMORY_MB", 4096)),
        (4, 4096, 1),
    )


def test_record_round_trips_through_the_domain():
    request, placement = placed(
        4,
        4096,
        {
            "hw:cpu_policy": "dedicated",
            "hw:numa_nodes": "2",
            "hw:mem_page_size": "1GB",
            "hw:emulator_threads_policy": "isolate",
        },
    )
    written = record("g", placement)
    dom = guest_domain(
        GuestDomain("g", "uuid-g", "/d"),
        request,
        placement,
        TOPOLOGY,
        RESTRICTIONS,
    )
    metadata.inject(dom, written)
    back = metadata.read(etree.tostring(dom, encoding="unicode"))
    assert back == written
    assert back.dynamic


def test_slice_records_are_not_dynamic():
    rec = metadata.GuestRecord("s", "u", "4_1", "CUSTOM_SLICE_4_GPU_V1")
    dom = etree.fromstring(b"<domain><name>s</name></domain>")
    back = metadata.read(
        etree.tostring(metadata.inject(dom, rec), encoding="unicode")
    )
    assert back == rec and not back.dynamic


# -- usage from records ----------------------------------------------


def test_usage_is_the_sum_of_the_records():
    specs = {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "1GB"}
    _, first = placed(4, 2048, specs)

    after_first = claim(TOPOLOGY, Usage(), first, RESTRICTIONS)
    _, second = placed(4, 2048, specs, after_first)
    records = [record("b", second), record("a", first)]
    expected = claim(TOPOLOGY, after_first, second, RESTRICTIONS)
    assert usage_of(TOPOLOGY, records, RESTRICTIONS) == expected


def test_a_cpu_held_twice_names_both_guests():
    _, placement = placed(4, 2048, {"hw:cpu_policy": "dedicated"})
    with pytest.raises(ClaimError) as exc:
        usage_of(
            TOPOLOGY, [record("one", placement), record("two", placement)]
        )
    assert exc.value.code == "usage.conflict"
    assert "guest two" in exc.value.message
    assert "held by one" in exc.value.message


# -- choosing a candidate ---------------------------------------------


def summaries(**free):
    return {
        rp: {"resources": {"X": {"capacity": cap, "used": used}}}
        for rp, (cap, used) in free.items()
    }


def test_choose_adds_the_fitters_devices_and_prefers_near_ones():
    body = {
        "allocation_requests": [
            {"allocations": {"far": {"resources": {"X": 1}}}},
            {"allocations": {"near": {"resources": {"X": 1}}}},
        ],
        "provider_summaries": summaries(far=(16, 0), near=(16, 8), pf=(4, 3)),
    }
    extra = {"pf": {"X": 1}}
    got = choose(body, extra, {"near": 2})
    assert got == {"near": {"X": 1}, "pf": {"X": 1}}
    # without nearness, the most room left wins
    assert choose(body, extra) == {"far": {"X": 1}, "pf": {"X": 1}}
    # a device provider that is full rules every candidate out
    assert choose(body, {"pf": {"X": 2}}) is None


def test_merge_adds_and_subtracts():
    assert merge({"a": {"X": 1}}, {"a": {"X": 2, "Y": 1}}, {"b": {}}) == {
        "a": {"X": 3, "Y": 1},
        "b": {},
    }


# -- the host check --------------------------------------------------


def test_host_check_knows_mdevs_and_per_cell_pools():
    request, placement = placed(
        2, 2048, {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "1GB"}
    )
    dom = guest_domain(
        GuestDomain(
            "g",
            "u",
            "/d",
            mdevs=({"uuid": "aaaaaaaa-0000-0000-0000-000000000001"},),
        ),
        request,
        placement,
        TOPOLOGY,
        RESTRICTIONS,
    )
    assert check_domain(dom, TOPOLOGY, set()) == []
    problems = check_domain(dom, TOPOLOGY, set(), mdev_uuids=set())
    assert problems == [
        "<hostdev type='mdev'> uuid aaaaaaaa-0000-0000-0000-000000000001 "
        "is not an mdev of this host"
    ]
    dom.find("numatune/memnode").set("nodeset", "1")
    assert check_domain(dom, TOPOLOGY, set()) == []  # 1G exists on cell 1
    dom.find("memoryBacking/hugepages/page").set("size", "64")
    problems = check_domain(dom, TOPOLOGY, set())
    assert "host cell 1 has no pool of that size" in problems[-1]
