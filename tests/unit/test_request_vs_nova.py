"""Every row of the invalid and valid tables against the real Nova.

For each row we build Nova's own ``objects.Flavor`` and
``objects.ImageMeta.from_dict`` (which reads ``hw_numa_cpus.N`` /
``hw_numa_mem.N`` image properties into lists, stopping at the first
missing index, exactly as Glance's flat properties arrive) and run
``hardware.numa_get_constraints``, ``get_locked_memory_constraint``,
``get_pci_numa_policy_constraint`` and ``get_realtime_cpu_constraint``.

* We refuse -> Nova refuses, with an exception ``NOVA_CODES`` maps to our
  code.
* We accept -> Nova accepts with the same cells (cpuset | pcpuset,
  pcpuset, memory, page size, CPU and thread policy per cell), emulator
  threads policy, locked memory, PCI NUMA policy and realtime vCPUs.

Exceptions, each listed with its reason: ``ALLOWED_DIFFERENCES`` (Nova is
more lenient here, on purpose or through its API layer) and ``OURS``
(rows about keys Nova does not know, compared with nothing).  A test
checks that the allowed differences really differ, so the table cannot
go stale.
"""

import re
import types

import pytest

from nova_slices.errors import RequestError
from nova_slices.request.build import build_request
from tests.unit.test_request_invalid import INVALID
from tests.unit.test_request_valid import VALID

pytestmark = [
    # EventletDeprecationWarning, by message: naming the class would make
    # pytest import eventlet (and warn) before the filter is in place
    pytest.mark.filterwarnings(r"ignore:\s*Eventlet is deprecated"),
    # oslo.policy/oslo.service deprecations raised while Nova imports
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_policy"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_utils"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_service"),
]

# Nova exception -> our codes.  Keys are (exception class name, a fragment
# of its message that tells apart the cases sharing one class); image
# properties Nova's ImageMetaProps cannot even hold are reported as
# ("ImageMetaProps", field).
NOVA_CODES = {
    ("InvalidNUMANodesNumber", ""): {"numa-nodes-invalid"},
    ("ImageNUMATopologyForbidden", ""): {"image-numa-forbidden"},
    ("MemoryPageSizeInvalid", ""): {"page-size-invalid"},
    ("MemoryPageSizeForbidden", ""): {"image-page-size-forbidden"},
    # Nova reads hw:numa_cpus.N / hw:numa_mem.N up to the first gap and
    # compares the list lengths with the node count: a missing cell and
    # a cell beyond the node count look alike
    ("ImageNUMATopologyIncomplete", ""): {
        "numa-incomplete",
        "numa-index-out-of-range",
    },
    ("ImageNUMATopologyAsymmetric", ""): {"numa-asymmetric"},
    ("ImageNUMATopologyCPUOutOfRange", ""): {"numa-cpus-out-of-range"},
    ("ImageNUMATopologyCPUDuplicates", ""): {"numa-cpus-duplicate"},
    ("ImageNUMATopologyCPUsUnassigned", ""): {"numa-cpus-unassigned"},
    ("ImageNUMATopologyMemoryOutOfRange", ""): {"numa-mem-mismatch"},
    ("ImageCPUPinningForbidden", ""): {"image-cpu-policy-forbidden"},
    ("ImageCPUThreadPolicyForbidden", ""): {
        "image-cpu-thread-policy-forbidden"
    },
    ("InvalidCPUAllocationPolicy", ""): {"cpu-policy-invalid"},
    ("InvalidCPUThreadAllocationPolicy", ""): {"cpu-thread-policy-invalid"},
    ("InvalidEmulatorThreadsPolicy", ""): {"emulator-threads-policy-invalid"},
    ("CPUThreadPolicyConfigurationInvalid", ""): {
        "thread-policy-needs-dedicated"
    },
    ("BadRequirementEmulatorThreadsPolicy", ""): {
        "emulator-isolate-needs-dedicated"
    },
    ("RealtimeConfigurationInvalid", ""): {"realtime-needs-dedicated"},
    ("RealtimeMaskNotFoundOrInvalid", ""): {"realtime-mask-invalid"},
    ("RequiredMixedInstancePolicy", ""): {"dedicated-mask-needs-mixed"},
    # one class, raised for both masks and for none
    ("RequiredMixedOrRealtimeCPUMask", ""): {
        "mixed-mask-conflict",
        "mixed-mask-required",
    },
    ("InvalidMixedInstanceDedicatedMask", ""): {"dedicated-mask-invalid"},
    ("InvalidRequest", "in combination with the 'hw:cpu_policy'"): {
        "resources-with-cpu-policy"
    },
    ("InvalidRequest", "both 'resources:VCPU' and 'resources:PCPU'"): {
        "resources-vcpu-and-pcpu"
    },
    ("InvalidRequest", "PCPUs"): {"pcpu-count-mismatch"},
    ("InvalidRequest", "'trait:HW_CPU_HYPERTHREADING'"): {
        "hyperthreading-trait-with-thread-policy"
    },
    # parse_cpu_spec on a flavor mask or hw:numa_cpus.N
    ("Invalid", "expression"): {
        "numa-cpus-invalid",
        "realtime-mask-invalid",
        "dedicated-mask-invalid",
    },
    # int() on hw:numa_mem.N
    ("ValueError", "invalid literal for int()"): {"numa-mem-invalid"},
    ("LockMemoryForbidden", ""): {"locked-memory-needs-page-size"},
    ("FlavorImageLockedMemoryConflict", ""): {"locked-memory-conflict"},
    ("ImagePCINUMAPolicyForbidden", ""): {"image-pci-policy-forbidden"},
    ("InvalidPCINUMAAffinity", ""): {"pci-numa-policy-invalid"},
    ("ImageMetaProps", "hw_cpu_policy"): {"cpu-policy-invalid"},
    ("ImageMetaProps", "hw_cpu_thread_policy"): {"cpu-thread-policy-invalid"},
    ("ImageMetaProps", "hw_numa_nodes"): {"numa-nodes-invalid"},
    ("ImageMetaProps", "hw_numa_cpus"): {"numa-cpus-invalid"},
    ("ImageMetaProps", "hw_numa_mem"): {"numa-mem-invalid"},
    ("ImageMetaProps", "hw_pci_numa_affinity_policy"): {
        "pci-numa-policy-invalid"
    },
}

API = "nova-api refuses the flavor first"
LENIENT = "Nova accepts"

# row id -> (kind, reason).  For API rows the test checks that Nova's
# extra spec validator (or its flavor schema, for vcpus/memory) does
# refuse the flavor, so hardware.py never sees it.
ALLOWED_DIFFERENCES = {
    "group-policy-unknown": (
        API,
        "group_policy's validator takes none or isolate only",
    ),
    "vcpus-zero": (API, "flavor schema: vcpus is at least 1"),
    "vcpus-negative": (API, "flavor schema: vcpus is at least 1"),
    "memory-zero": (API, "flavor schema: memory_mb is at least 1"),
    "memory-negative": (API, "flavor schema: memory_mb is at least 1"),
    "numa-cpus-index-not-a-number": (
        API,
        "hw:numa_cpus.x matches no validator in the hw namespace",
    ),
    "numa-mem-index-128": (
        LENIENT,
        "Nova reads hw:numa_mem.0-127 only and ignores the rest",
    ),
    "image-numa-cpus-index-negative": (
        LENIENT,
        "ImageMetaProps drops properties it has no field for",
    ),
    "image-numa-mem-index-word": (
        LENIENT,
        "ImageMetaProps drops properties it has no field for",
    ),
    "realtime-not-a-boolean": (
        API,
        "hardware.py reads 'maybe' as false; the validator wants a bool",
    ),
    "resources-vcpu-not-a-number": (
        API,
        "hardware.py skips non-integers ('handled elsewhere')",
    ),
    "resources-custom-negative": (
        LENIENT,
        "the validator has no minimum; Placement refuses it later",
    ),
    "granular-pcpu-not-a-number": (
        API,
        "hardware.py skips non-integers ('handled elsewhere')",
    ),
    "resource-class-unknown": (API, "resources:GPU matches no validator"),
    "resource-class-lowercase-custom": (
        API,
        "resources2:custom_x matches no validator",
    ),
    "trait-unknown": (API, "trait:HW_CPU_FOO matches no validator"),
    "trait-value-not-required-or-forbidden": (
        API,
        "trait values are required|forbidden",
    ),
    "hyperthreading-trait-value-preferred": (
        API,
        "trait values are required|forbidden; hardware.py ignores others",
    ),
    "page-size-zero": (
        LENIENT,
        "0 parses as a falsy page size: no NUMA topology, no error",
    ),
    "page-size-below-one-kib": (
        LENIENT,
        "512B is 0.5 KiB, stored as page size 0",
    ),
    "locked-memory-not-a-boolean": (
        API,
        "hardware.py reads 'maybe' as false; the validator wants a bool",
    ),
    "image-locked-memory-not-a-boolean": (
        LENIENT,
        "FlexibleBooleanField reads 'perhaps' as false",
    ),
    "numa-cpus-cell-without-vcpus": (
        LENIENT,
        "'^2' parses to an empty set: a guest cell with no vCPUs",
    ),
    "numa-mem-zero-cell": (API, "hw:numa_mem.N has a minimum of 1"),
    "image-numa-mem-negative-cell": (
        LENIENT,
        "nothing checks a cell's memory is positive, only the sum",
    ),
    "numa-map-without-numa": (
        LENIENT,
        "without a NUMA topology Nova never reads hw:numa_cpus.N",
    ),
    "numa-cpus-index-after-a-gap": (
        LENIENT,
        "Nova stops reading hw:numa_cpus.N at the first gap",
    ),
    "pci-alias-count-zero": (
        LENIENT,
        "the validator's pattern allows a count of 0; hardware.py never "
        "reads aliases",
    ),
    "pci-alias-count-word": (API, "the validator wants alias:count"),
    "pci-alias-count-missing": (API, "the validator wants alias:count"),
    "pci-alias-empty-item": (
        LENIENT,
        "the validator's [^:]+ swallows the comma; nova.pci.request fails "
        "later on the empty item",
    ),
    "pci-alias-name-with-space": (
        LENIENT,
        "the validator allows any name without ':'",
    ),
}

# rows about keys only nova-slices reads: Nova's hardware.py has no
# host cell pins (hw:numa_node.N / hw_numa_node.N) at all
OURS = {
    "numa-node-index-word": "hw:numa_node.N is ours",
    "numa-node-negative": "hw:numa_node.N is ours",
    "numa-node-word": "hw:numa_node.N is ours",
    "image-numa-node-word": "hw_numa_node.N is ours",
    "image-pin-disagrees-with-flavor": "hw_numa_node.N is ours",
    "image-pin-where-flavor-pins-another-cell": "hw_numa_node.N is ours",
    "pin-beyond-implicit-cell": "hw:numa_node.N is ours",
    "image-pin-beyond-cells": "hw_numa_node.N is ours",
    "two-guest-cells-one-host-cell": "hw:numa_node.N is ours",
    "image-two-guest-cells-one-host-cell": "hw_numa_node.N is ours",
    "pin-alone-implies-one-cell": (
        "a pin implies one guest cell here; Nova ignores the key"
    ),
}


PAGESIZES = {"small": -1, "large": -2, "any": -3}
ROWS = [(row.id, row) for row in INVALID] + [(row.id, row) for row in VALID]


def load_nova():
    """Nova's modules, imported when a test first needs them."""
    from nova import exception, objects

    objects.register_all()
    from nova.api.validation.extra_specs import validators
    from nova.virt import hardware

    return types.SimpleNamespace(
        exception=exception,
        objects=objects,
        hardware=hardware,
        validators=validators,
    )


@pytest.fixture(scope="module")
def nova():
    return load_nova()


def _bad_image_field(nova, props):
    """The ImageMetaProps field a property cannot be stored in."""
    for key, value in props.items():
        # hw_numa_cpus.N is read from .0 upwards: try it at index 0
        probe = re.sub(r"\.\d+$", ".0", key)
        try:
            nova.objects.ImageMetaProps.from_dict({probe: value})
        except Exception:
            return probe.split(".")[0]
    raise AssertionError(f"no single property breaks ImageMetaProps: {props}")


def nova_outcome(nova, row):
    """("refused", class name, detail) or ("accepted", summary)."""
    hardware = nova.hardware
    flavor = nova.objects.Flavor(
        vcpus=row.vcpus,
        memory_mb=row.memory_mb,
        extra_specs=dict(row.specs),
        name="f",
    )
    try:
        image = nova.objects.ImageMeta.from_dict(
            {"properties": dict(row.props)}
        )
    except Exception:
        return ("refused", "ImageMetaProps", _bad_image_field(nova, row.props))
    try:
        topology = hardware.numa_get_constraints(flavor, image)
        locked = hardware.get_locked_memory_constraint(flavor, image)
        pci = hardware.get_pci_numa_policy_constraint(flavor, image)
        realtime = hardware.get_realtime_cpu_constraint(flavor, image)
    except Exception as exc:
        return ("refused", type(exc).__name__, str(exc))
    cells = []
    if topology is not None:
        cells = [
            {
                "cpus": sorted(c.cpuset | c.pcpuset),
                "pcpus": sorted(c.pcpuset),
                "memory_mb": c.memory,
                "pagesize": c.pagesize,
                "cpu_policy": c.cpu_policy,
                "cpu_thread_policy": c.cpu_thread_policy,
            }
            for c in topology.cells
        ]
    return (
        "accepted",
        {
            "cells": cells,
            "emulator_threads_policy": (
                topology.emulator_threads_policy if topology else None
            ),
            "locked_memory": locked,
            "pci_numa_affinity_policy": pci,
            "realtime_cpus": None if realtime is None else sorted(realtime),
        },
    )


def our_outcome(row):
    """("refused", code) or ("accepted", summary) in Nova's terms."""
    try:
        req = build_request(row.vcpus, row.memory_mb, row.specs, row.props)
    except RequestError as err:
        return ("refused", err.code.removeprefix("request."))
    pagesize = PAGESIZES.get(req.pagesize, req.pagesize)
    return (
        "accepted",
        {
            "cells": [
                {
                    "cpus": sorted(c.cpus),
                    "pcpus": sorted(c.pcpus),
                    "memory_mb": c.memory_mb,
                    "pagesize": pagesize,
                    "cpu_policy": req.cpu_policy,
                    "cpu_thread_policy": req.cpu_thread_policy,
                }
                for c in req.cells
            ],
            # Nova keeps it on the topology only
            "emulator_threads_policy": (
                req.emulator_threads_policy if req.cells else None
            ),
            "locked_memory": req.locked_memory,
            "pci_numa_affinity_policy": req.pci_numa_affinity_policy,
            "realtime_cpus": (
                None
                if req.realtime_cpus is None
                else sorted(req.realtime_cpus)
            ),
        },
    )


def mapped_codes(name, detail):
    found = [
        codes
        for (cls, fragment), codes in NOVA_CODES.items()
        if cls == name and fragment in detail
    ]
    assert len(found) == 1, f"map {name}: {detail!r} in NOVA_CODES"
    return found[0]


def _param(row_id, row):
    return pytest.param(row, id=row_id)


@pytest.mark.parametrize(
    "row",
    [
        _param(i, r)
        for i, r in ROWS
        if i not in ALLOWED_DIFFERENCES and i not in OURS
    ],
)
def test_same_outcome_as_nova(nova, row):
    ours, theirs = our_outcome(row), nova_outcome(nova, row)
    if ours[0] == "refused":
        assert theirs[0] == "refused", f"Nova accepts: {theirs[1]}"
        assert ours[1] in mapped_codes(*theirs[1:])
    else:
        assert theirs[0] == "accepted", f"Nova refuses: {theirs[1:]}"
        assert ours[1] == theirs[1]


def _api_refuses(nova, row):
    if row.vcpus < 1 or row.memory_mb < 1:
        return True  # the flavor-manage schema's minimum of 1
    for key, value in row.specs.items():
        try:
            nova.validators.validate(key, value)
        except nova.exception.ValidationError:
            return True
    return False


@pytest.mark.parametrize(
    "row",
    [pytest.param(r, id=i) for i, r in ROWS if i in ALLOWED_DIFFERENCES],
)
def test_allowed_difference_is_real_and_explained(nova, row):
    kind, reason = ALLOWED_DIFFERENCES[row.id]
    assert reason
    ours, theirs = our_outcome(row), nova_outcome(nova, row)
    # only ever in one direction: we refuse what Nova lets through
    assert ours[0] == "refused" and theirs[0] == "accepted"
    assert _api_refuses(nova, row) == (kind == API)


def test_tables_name_real_rows():
    ids = {i for i, _ in ROWS}
    assert len(ids) == len(ROWS)
    for table in (ALLOWED_DIFFERENCES, OURS):
        assert set(table) <= ids
    assert not set(ALLOWED_DIFFERENCES) & set(OURS)


def test_rows_left_out_are_only_about_our_own_keys():
    """Only rows using hw:numa_node.N / hw_numa_node.N stay unchecked."""
    for row_id, row in ROWS:
        if row_id in OURS:
            keys = list(row.specs) + list(row.props)
            assert any("numa_node." in k for k in keys), row_id


def test_nova_codes_name_real_codes():
    mapped = set().union(*NOVA_CODES.values())
    assert mapped <= {row.code for row in INVALID}


@pytest.mark.parametrize(
    "row",
    [pytest.param(r, id=r.id) for r in VALID if r.id not in ()],
)
def test_nova_api_accepts_every_valid_flavor(nova, row):
    """What we accept passes Nova's extra spec validator too."""
    for key, value in row.specs.items():
        nova.validators.validate(key, value)


def test_nova_api_wants_an_alias_count(nova):
    """Ours defaults a missing count to 1; nova-api refuses it."""
    with pytest.raises(nova.exception.ValidationError):
        nova.validators.validate("pci_passthrough:alias", "a1:2,a2")
