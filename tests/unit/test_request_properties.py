"""Properties of build_request over generated flavors and images.

(a) Whatever the keys and values, the only exception is RequestError.
(b) Generated valid requests are accepted and account for every vCPU and
    every MB exactly once; pinned vCPUs follow the CPU policy.
(c) The same generated requests give the same cells in the real Nova.
"""

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from nova_slices.cpuset import format_cpuset
from nova_slices.errors import RequestError
from nova_slices.request.build import build_request
from tests.unit.test_request_valid import Good
from tests.unit.test_request_vs_nova import (
    load_nova,
    nova_outcome,
    our_outcome,
)

text = st.text(max_size=12)
FLAVOR_KEYS = [
    "hw:numa_nodes",
    "hw:cpu_policy",
    "hw:cpu_thread_policy",
    "hw:emulator_threads_policy",
    "hw:cpu_realtime",
    "hw:cpu_realtime_mask",
    "hw:cpu_dedicated_mask",
    "hw:mem_page_size",
    "hw:locked_memory",
    "hw:pci_numa_affinity_policy",
    "pci_passthrough:alias",
    "nova_slices:slice_class",
]
IMAGE_KEYS = [
    "hw_numa_nodes",
    "hw_cpu_policy",
    "hw_cpu_thread_policy",
    "hw_cpu_realtime_mask",
    "hw_mem_page_size",
    "hw_locked_memory",
    "hw_pci_numa_affinity_policy",
    "traits_required",
    "trait:HW_CPU_HYPERTHREADING",
]
WORDS = [
    "",
    " ",
    "0",
    "1",
    "2",
    "4",
    "-1",
    "+2",
    "٣",
    "shared",
    "dedicated",
    "mixed",
    "prefer",
    "isolate",
    "require",
    "share",
    "true",
    "no",
    "small",
    "large",
    "any",
    "2048",
    "2MB",
    "1GB",
    "512B",
    "^0",
    "0-1",
    "0-3",
    "1-0",
    "0,^0",
    "required",
    "forbidden",
    "legacy",
    "socket",
    "a1:2,a2",
    "HW_CPU_HYPERTHREADING",
    "CUSTOM_X",
]
values = st.one_of(st.sampled_from(WORDS), text, st.integers(-3, 200).map(str))
index = st.one_of(st.integers(-1, 130).map(str), text)
suffix = st.sampled_from(["", "1", "2", "_g", "0", "_"])


def _indexed(prefix):
    return st.builds(lambda n: f"{prefix}.{n}", index)


flavor_keys = st.one_of(
    st.sampled_from(FLAVOR_KEYS),
    _indexed("hw:numa_cpus"),
    _indexed("hw:numa_mem"),
    _indexed("hw:numa_node"),
    st.builds(
        "resources{}:{}".format,
        suffix,
        st.one_of(st.sampled_from(["VCPU", "PCPU", "CUSTOM_X", "x"]), text),
    ),
    st.builds(
        "trait{}:{}".format,
        suffix,
        st.one_of(
            st.sampled_from(["HW_CPU_HYPERTHREADING", "CUSTOM_Y", "y"]), text
        ),
    ),
    text,
)
image_keys = st.one_of(
    st.sampled_from(IMAGE_KEYS),
    _indexed("hw_numa_cpus"),
    _indexed("hw_numa_mem"),
    _indexed("hw_numa_node"),
    text,
)
# well-formed flavors, so that the specs are what gets tested; bad vCPU
# and memory values have their own test
vcpus = st.integers(1, 16)
memory = st.one_of(
    st.integers(1, 65536), st.sampled_from([1024, 2048, 4096, 8192])
)


@settings(max_examples=1500, deadline=None)
@given(
    vcpus,
    memory,
    st.dictionaries(flavor_keys, values, max_size=8),
    st.dictionaries(image_keys, values, max_size=5),
)
def test_only_request_errors(vcpus, memory_mb, specs, props):
    try:
        req = build_request(vcpus, memory_mb, specs, props)
    except RequestError as err:
        event(err.code)
        assert err.code.startswith("request.")
        assert err.code != "request.invalid"
        assert err.message
        return
    event("accepted")
    req.to_dict()
    cpus = sorted(cpu for c in req.cells for cpu in c.cpus)
    assert cpus in ([], list(range(vcpus)))


@given(
    st.one_of(st.integers(-3, 0), st.none(), st.text(), st.floats()),
    st.one_of(st.integers(-3, 4096), st.none(), st.text(), st.floats()),
)
def test_bad_flavor_sizes_are_request_errors(vcpus, memory_mb):
    try:
        build_request(vcpus, memory_mb, {}, {})
    except RequestError as err:
        assert err.code in ("request.vcpus-invalid", "request.memory-invalid")
    else:
        raise AssertionError("accepted")


def test_boolean_vcpus_are_refused():
    with pytest.raises(RequestError):
        build_request(True, 1024, {}, {})


@pytest.mark.parametrize(
    "specs",
    [
        {"hw:numa_nodes": "1", "hw:numa_cpus.²": "0"},
        {"hw:mem_page_size": "²"},
        {"pci_passthrough:alias": "a1:²"},
    ],
    ids=["numa-index", "page-size", "pci-alias-count"],
)
def test_unicode_superscript_digit_is_a_request_error(specs):
    with pytest.raises(RequestError):
        build_request(2, 2048, specs, {})


# -- (b) generated valid requests ------------------------------------------


@st.composite
def valid_requests(draw):
    """(vcpus, memory_mb, extra specs, image props, what we asked for)."""
    n = draw(st.integers(1, 16))
    specs, props = {}, {}
    on_image = draw(st.booleans())
    numa = props if on_image else specs
    sep = "_" if on_image else ":"
    layout = draw(st.sampled_from(["none", "symmetric", "explicit"]))
    groups = None
    if layout == "symmetric":
        nodes = draw(
            st.sampled_from([d for d in range(1, n + 1) if n % d == 0])
        )
        memory_mb = nodes * draw(st.integers(1, 4096))
        numa[f"hw{sep}numa_nodes"] = str(nodes)
    elif layout == "explicit":
        nodes = draw(st.integers(1, n))
        order = draw(st.permutations(range(n)))
        cuts = sorted(
            draw(
                st.sets(
                    st.integers(1, n - 1),
                    min_size=nodes - 1,
                    max_size=nodes - 1,
                )
            )
            if n > 1
            else set()
        )
        bounds = [0, *cuts, n]
        groups = [
            frozenset(order[a:b])
            for a, b in zip(bounds, bounds[1:], strict=False)
        ]
        mems = draw(
            st.lists(st.integers(1, 4096), min_size=nodes, max_size=nodes)
        )
        memory_mb = sum(mems)
        numa[f"hw{sep}numa_nodes"] = str(nodes)
        for i, (cpus, mem) in enumerate(zip(groups, mems, strict=True)):
            numa[f"hw{sep}numa_cpus.{i}"] = format_cpuset(cpus)
            numa[f"hw{sep}numa_mem.{i}"] = str(mem)
    else:
        memory_mb = draw(st.integers(1, 65536))

    policies = [None, "shared", "dedicated"] + (["mixed"] if n > 1 else [])
    policy = draw(st.sampled_from(policies))
    mask = None
    if policy:
        if draw(st.booleans()):
            specs["hw:cpu_policy"] = policy
        else:
            props["hw_cpu_policy"] = policy
    if policy == "mixed":
        mask = draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n - 1))
        if draw(st.booleans()):
            specs["hw:cpu_dedicated_mask"] = format_cpuset(mask)
        else:
            specs["hw:cpu_realtime"] = "yes"
            specs["hw:cpu_realtime_mask"] = format_cpuset(mask)
    if policy in ("dedicated", "mixed"):
        thread = draw(st.sampled_from([None, "prefer", "isolate", "require"]))
        if thread:
            specs["hw:cpu_thread_policy"] = thread
        if draw(st.booleans()):
            specs["hw:emulator_threads_policy"] = "isolate"
    if policy == "dedicated" and n > 1 and draw(st.booleans()):
        specs["hw:cpu_realtime"] = "true"
        specs["hw:cpu_realtime_mask"] = "^0"
    page = draw(
        st.sampled_from([None, "small", "large", "any", "2048", "1GB"])
    )
    if page:
        specs["hw:mem_page_size"] = page
        if page in ("large", "any") and draw(st.booleans()):
            props["hw_mem_page_size"] = draw(st.sampled_from(["2MB", "1GB"]))
    asked = {
        "layout": layout,
        "policy": policy,
        "mask": mask,
        "groups": groups,
    }
    return n, memory_mb, specs, props, asked


@settings(max_examples=500, deadline=None)
@given(valid_requests())
def test_valid_requests_account_for_everything(case):
    n, memory_mb, specs, props, asked = case
    req = build_request(n, memory_mb, specs, props)
    implied = (
        asked["policy"] in ("dedicated", "mixed")
        or "hw:mem_page_size" in specs
    )
    if asked["layout"] == "none" and not implied:
        assert req.cells == ()
        return
    assert req.cells
    cpus = [cpu for c in req.cells for cpu in c.cpus]
    assert sorted(cpus) == list(range(n)), "every vCPU exactly once"
    assert sum(c.memory_mb for c in req.cells) == memory_mb
    assert all(c.memory_mb > 0 and c.cpus for c in req.cells)
    for c in req.cells:
        assert c.pcpus <= c.cpus
        if asked["policy"] == "dedicated":
            assert c.pcpus == c.cpus
        elif asked["policy"] in (None, "shared"):
            assert c.pcpus == frozenset()
    if asked["policy"] == "mixed":
        assert req.dedicated_cpus == asked["mask"]
    if asked["groups"] is not None:
        assert [c.cpus for c in req.cells] == asked["groups"]


@pytest.fixture(scope="module")
def nova():
    return load_nova()


# warnings Nova's first import raises (eventlet, oslo deprecations)
@pytest.mark.filterwarnings(r"ignore:\s*Eventlet is deprecated")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_policy")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_utils")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_service")
@settings(max_examples=300, deadline=None)
@given(case=valid_requests())
def test_valid_requests_match_nova(nova, case):
    n, memory_mb, specs, props, asked = case
    event(f"{asked['layout']} {asked['policy']}")
    row = Good("generated", n, memory_mb, specs, props, {})
    ours = our_outcome(row)
    assert ours[0] == "accepted"
    assert nova_outcome(nova, row) == ours
