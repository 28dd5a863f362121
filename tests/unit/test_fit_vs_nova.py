"""Our NUMA fitter against Nova's ``numa_fit_instance_to_host``.

Seeded random cases (tests/novafit.py: hosts with SMT, CPU sets, page
pools and usage; shared, dedicated and mixed guests with thread and
emulator threads policies and page sizes) go to both.  Every
disagreement must be explained by one class of ``novafit.CLASSES``: a
Nova bug, shown on the case by Nova's own code answering as we do once
the faulty step is corrected, or a documented deliberate difference.  An
unexplained disagreement fails the test: it is a bug of this project
until shown otherwise.

``NOVA_SLICES_FIT_DIFF_CASES`` sets the number of cases (default 4000,
about 12 s); ``tools/fit_vs_nova.py`` runs many more and prints the
figures.  Nova is imported, never skipped: the test run installs the
``[nova]`` extra.
"""

import copy
import json
import os
import random

import pytest

from tests import novafit

pytestmark = [
    # EventletDeprecationWarning, by message (see test_request_vs_nova)
    pytest.mark.filterwarnings(r"ignore:\s*Eventlet is deprecated"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_policy"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_utils"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_service"),
]

CASES = int(os.environ.get("NOVA_SLICES_FIT_DIFF_CASES", "4000"))
NAMES = {c.name for c in novafit.CLASSES}


@pytest.fixture(scope="module")
def run():
    return novafit.run_cases(CASES)


def _show(result):
    return json.dumps(
        {"kind": result.kind, "detail": result.detail, "case": result.case}
    )


def test_every_disagreement_is_explained(run):
    counts, unexplained = run
    assert not unexplained, "\n".join(_show(r) for r in unexplained)
    for (_kind, labels), _ in counts.items():
        assert set(labels) <= NAMES, labels


def test_the_run_has_both_answers_and_every_class(run):
    """A run of mostly one answer would prove little; a class no case
    shows any more (a Nova that fixed it, say) must go."""
    counts, _ = run
    kinds = {}
    for (kind, _), n in counts.items():
        kinds[kind] = kinds.get(kind, 0) + n
    assert kinds.get("agree-fit", 0) > CASES // 5, kinds
    assert kinds.get("agree-no-fit", 0) > CASES // 5, kinds
    seen = {name for (_, labels) in counts for name in labels}
    assert seen == NAMES, NAMES - seen


def test_every_class_is_documented():
    for cls in novafit.CLASSES:
        assert cls.kind in ("nova-bug", "deliberate")
        assert cls.explanation
    readme = open(
        os.path.join(os.path.dirname(__file__), "..", "..", "README.rst")
    ).read()
    # the deliberate difference is named there, and every tracker
    assert novafit.OWN_CPUS.name in readme
    for cls in novafit.CLASSES:
        assert cls.tracker is None or cls.tracker in readme, cls


def test_the_reenactment_answers_as_nova_does():
    """``NovaFit.loop`` stands in for ``numa_fit_instance_to_host`` when a
    disagreement is explained; on every case it must answer as Nova."""
    differ = novafit.Differ()
    nova = differ.nova
    rng = random.Random(1515)
    checked = 0
    while checked < 300:
        case = novafit.random_case(rng)
        flavor, image = novafit.nova_flavor(nova, case)
        try:
            instance = nova.hardware.numa_get_constraints(flavor, image)
        except nova.exception.Invalid:
            continue
        if instance is None:
            continue
        host = novafit.nova_host(nova, case)
        real = nova.hardware.numa_fit_instance_to_host(
            host, copy.deepcopy(instance), None
        )
        again = novafit.NovaFit(nova, host, instance).loop()
        assert again == (real is not None), json.dumps(case)
        checked += 1


# -- one case of each kind, by hand ------------------------------------------


def cell(cid, cpus, threads=1, small_mb=4096, pinned=(), small_used=0, **kw):
    """A case's host cell: ``cpus`` CPUs from ``cid * 100`` in cores of
    ``threads``, a 4 KiB pool (``small_used`` pages used) and the given
    huge pools ``huge={"2048": n}``."""
    ids = list(range(cid * 100, cid * 100 + cpus))
    huge = kw.get("huge", {})
    return {
        "id": cid,
        "cpus": ids,
        "siblings": [ids[i : i + threads] for i in range(0, cpus, threads)],
        "socket": 0,
        "small_mb": small_mb,
        "pools": True,
        "huge": huge,
        "pinned": list(pinned),
        "cpu_usage": 0,
        "pages_used": {"4": small_used, **{s: 0 for s in huge}},
        "pages_reserved": {"4": 0, **{s: 0 for s in huge}},
        "memory_usage": 0,
    }


def case(cells, vcpus, memory_mb, specs, sets="legacy"):
    cpus = sorted(c for cl in cells for c in cl["cpus"])
    if sets == "legacy":
        dedicated = shared = cpus
    else:  # every CPU dedicated, none shared
        dedicated, shared = cpus, []
    return {
        "cpu_sets": sets,
        "dedicated": dedicated,
        "shared": shared,
        "cells": cells,
        "guest": {
            "vcpus": vcpus,
            "memory_mb": memory_mb,
            "extra_specs": {k: str(v) for k, v in specs.items()},
        },
    }


G1 = str(novafit.G1)


def asymmetric(*vcpus):
    """Shared guest cells of ``vcpus`` vCPUs and 512 MB each."""
    specs, first = {"hw:numa_nodes": len(vcpus)}, 0
    for i, n in enumerate(vcpus):
        specs[f"hw:numa_cpus.{i}"] = f"{first}-{first + n - 1}"
        specs[f"hw:numa_mem.{i}"] = 512
        first += n
    return specs


MIXED = {
    "hw:cpu_policy": "mixed",
    "hw:cpu_dedicated_mask": "0-1",
    "hw:numa_nodes": 2,
    "hw:numa_cpus.0": "0-1",
    "hw:numa_cpus.1": "2",
    "hw:numa_mem.0": 1024,
    "hw:numa_mem.1": 1024,
}

HAND = {
    # the case: guest cell 1 of a mixed guest has no dedicated
    # vCPU; host cell 1 has 512 MB of free small pages left (and 2 GB of
    # 1G pages).  The fitter used to place it; now both refuse
    "mixed-cell-needs-free-small-pages": (
        case(
            [
                cell(0, 4),
                cell(
                    1, 4, small_mb=2048, small_used=393216, huge={"1048576": 2}
                ),
            ],
            3,
            2048,
            MIXED,
        ),
        "agree-no-fit",
        (),
    ),
    # shared guest cells of 1, 1 and 4 vCPUs on host cells of 3, 1 and 2
    # CPUs: the 4-vCPU cell fits nowhere, yet Nova places it
    "cache-keys-false-fit": (
        case(
            [cell(0, 3), cell(1, 1), cell(2, 2)], 6, 1536, asymmetric(1, 1, 4)
        ),
        "nova-only",
        ("nova-fit-cache-keys",),
    ),
    # 1, 3 and 4 vCPUs on 3, 4 and 1 CPUs: one way fits, Nova refuses
    "cache-keys-false-refusal": (
        case(
            [cell(0, 3), cell(1, 4), cell(2, 1)], 8, 1536, asymmetric(1, 3, 4)
        ),
        "ours-only",
        ("nova-fit-cache-keys",),
    ),
    # hw:mem_page_size=any: Nova tries the memory-only cell first (most
    # free memory), writes 1G into the guest cell there, fails on CPUs,
    # then asks host cell 0 -- which has no 1G pages but room in 4 KiB
    # pages -- for 1G pages
    "pagesize-carry-over": (
        case(
            [
                cell(0, 4, small_mb=2048),
                cell(1, 0, small_mb=1024, huge={G1: 2}),
            ],
            2,
            2048,
            {"hw:numa_nodes": 1, "hw:mem_page_size": "any"},
        ),
        "ours-only",
        ("nova-pagesize-carry-over",),
    ),
    "isolate-with-cpu-sets": (
        case(
            [cell(0, 4, threads=2)],
            1,
            512,
            {"hw:cpu_policy": "dedicated", "hw:cpu_thread_policy": "isolate"},
            sets="dedicated",
        ),
        "ours-invalid",
        ("nova-isolate-with-cpu-sets",),
    ),
    "mixed-emulator-isolate": (
        case(
            [cell(0, 4), cell(1, 4)],
            3,
            2048,
            {
                **MIXED,
                "hw:cpu_dedicated_mask": "2",
                "hw:emulator_threads_policy": "isolate",
            },
        ),
        "ours-invalid",
        ("nova-mixed-cell-without-dedicated-vcpus",),
    ),
    "own-cpus": (
        # one core of 2 threads: the isolated vCPU's sibling is reserved,
        # the shared vCPU has nowhere to float but over the guest itself
        case(
            [cell(0, 2, threads=2)],
            2,
            512,
            {
                "hw:cpu_policy": "mixed",
                "hw:cpu_dedicated_mask": "0",
                "hw:cpu_thread_policy": "isolate",
            },
        ),
        "nova-only",
        ("shared-vcpus-off-own-pinned-cpus",),
    ),
}


@pytest.fixture(scope="module")
def differ():
    return novafit.Differ()


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_written_case(differ, name):
    data, kind, labels = HAND[name]
    got = differ.run(data)
    assert (got.kind, got.labels) == (kind, labels), got
