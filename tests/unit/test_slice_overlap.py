"""The overlap check: slices that may run together share nothing.

One table row per kind of overlap and per accepted sharing, on the
shipped gpu8-2s host's topology (4 cells, each with 224 x 1G and
1024 x 2M pages).  A row names the tree (slice -> conflict_parent), what
each slice's template holds, and the problems expected: their codes, the
slices they name and words of their message.
"""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nova_slices.host.restrictions import HostRestrictions
from nova_slices.slices.overlap import check_slice_overlaps
from nova_slices.slices.spec import SliceSpec
from nova_slices.slices.tree import build_tree
from nova_slices.virt.holdings import Holdings
from tests.unit.test_guest_xml import TOPOLOGY

G1 = 1024 * 1024
M2 = 2048
GPU_A = "0000:17:00.0"
GPU_B = "0000:31:00.0"
MDEV = "7d4b1c3a-9c1e-4c59-8f4e-0e6f2f1d2a11"


def tree_of(parents):
    """A tree from {slice: conflict_parent or None}; each slice its own
    class, so that any shape is allowed."""
    return build_tree(
        [
            SliceSpec(name, f"CUSTOM_SLICE_{name.upper()}", "t.xml.j2", parent)
            for name, parent in parents.items()
        ]
    )


def held(pins=(), emulator=(), pci=(), mdevs=(), pages=None):
    """Holdings; ``pages`` is {(cell, size KiB): count}."""
    return Holdings(
        frozenset(pins),
        frozenset(emulator),
        frozenset(pci),
        frozenset(mdevs),
        tuple(sorted((pages or {}).items())),
    )


SIBLINGS = {"p": None, "a": "p", "b": "p"}
COUSINS = {"r": None, "p": "r", "q": "r", "a": "p", "b": "q"}

CASES = [
    # (id, tree, holdings, restrictions, [(code, slices, words)])
    (
        "disjoint siblings",
        SIBLINGS,
        {
            "p": held({1, 2, 3, 4}, {0}, {GPU_A, GPU_B}),
            "a": held({1, 2}, {0}, {GPU_A}),
            "b": held({3, 4}, {0}, {GPU_B}),
        },
        None,
        [],
    ),
    (
        "siblings share a GPU",
        SIBLINGS,
        {
            "p": held({1, 2, 3, 4}, pci={GPU_A, GPU_B}),
            "a": held({1, 2}, pci={GPU_A}),
            "b": held({3, 4}, pci={GPU_A}),
        },
        None,
        [("slice.overlap-device", ["a", "b"], (GPU_A,))],
    ),
    (
        "siblings share an mdev",
        SIBLINGS,
        {
            "p": held(mdevs={MDEV}),
            "a": held(mdevs={MDEV}),
            "b": held(mdevs={MDEV}),
        },
        None,
        [("slice.overlap-device", ["a", "b"], (f"mdev {MDEV}",))],
    ),
    (
        "cousins share a GPU",
        COUSINS,
        {
            "r": held(pci={GPU_A}),
            "p": held(pci={GPU_A}),
            "q": held(pci={GPU_A}),
            "a": held(pci={GPU_A}),
            "b": held(pci={GPU_A}),
        },
        None,
        [
            ("slice.overlap-device", ["p", "q"], (GPU_A,)),
            ("slice.overlap-device", ["p", "b"], (GPU_A,)),
            ("slice.overlap-device", ["q", "a"], (GPU_A,)),
            ("slice.overlap-device", ["a", "b"], (GPU_A,)),
        ],
    ),
    (
        "two roots share pinned CPUs",
        {"a": None, "b": None},
        {"a": held({1, 2, 3}), "b": held({3, 4, 65})},
        None,
        [("slice.overlap-cpu", ["a", "b"], ("host CPU(s) 3;",))],
    ),
    (
        "emulator on another slice's vCPU",
        {"a": None, "b": None},
        {"a": held({1, 2}, {0}), "b": held({3, 4}, {2, 64})},
        None,
        [
            (
                "slice.overlap-emulator-cpu",
                ["b", "a"],
                ("b's template runs its emulator threads on host CPU(s) 2,",),
            )
        ],
    ),
    (
        "emulator cores shared between emulators",
        {"a": None, "b": None},
        {"a": held({1, 2}, {0, 64}), "b": held({3, 4}, {0, 64})},
        None,
        [],
    ),
    (
        "ancestor and descendants share everything",
        {"r": None, "p": "r", "a": "p"},
        {
            "r": held({1, 2, 3}, {0}, {GPU_A}, {MDEV}, {(0, G1): 200}),
            "p": held({1, 2, 3}, {1}, {GPU_A}, {MDEV}, {(0, G1): 200}),
            "a": held({1, 2, 3}, {2}, {GPU_A}, {MDEV}, {(0, G1): 200}),
        },
        None,
        [],
    ),
    (
        "pages that fit the pool",
        SIBLINGS,
        {
            "p": held(pages={(0, G1): 224}),
            "a": held(pages={(0, G1): 112}),
            "b": held(pages={(0, G1): 112}),
        },
        None,
        [],
    ),
    (
        "siblings' pages over the pool",
        SIBLINGS,
        {
            "p": held(pages={(0, G1): 300}),
            "a": held(pages={(0, G1): 150}),
            "b": held(pages={(0, G1): 150}),
        },
        None,
        [
            ("slice.pages-over-pool", ["p"], ("holds 300 1G pages", "224 1G")),
            (
                # p alone over the pool does not hide its children
                "slice.overlap-pages",
                ["a", "b"],
                ("300 1G pages on host cell 0", "a: 150, b: 150", "224 1G"),
            ),
        ],
    ),
    (
        # the parent alone fits; its children together do not
        "heaviest antichain below a parent that fits",
        SIBLINGS,
        {
            "p": held(pages={(1, G1): 200}),
            "a": held(pages={(1, G1): 120}),
            "b": held(pages={(1, G1): 120}),
        },
        None,
        [("slice.overlap-pages", ["a", "b"], ("240 1G pages",))],
    ),
    (
        "a leaf and its parent's sibling over the pool",
        COUSINS,
        {
            "r": held(pages={(0, G1): 200, (1, G1): 100}),
            "p": held(pages={(0, G1): 200}),
            "q": held(pages={(1, G1): 100}),
            "a": held(pages={(0, G1): 100}),
            "b": held(pages={(0, G1): 100, (1, G1): 100}),
        },
        None,
        [
            ("slice.not-inside-parent", ["b", "q"], ("on host cell 0",)),
            ("slice.overlap-pages", ["p", "b"], ("300 1G pages",)),
        ],
    ),
    (
        "pages of other sizes and cells do not add up",
        {"a": None, "b": None, "c": None},
        {
            "a": held(pages={(0, G1): 200}),
            "b": held(pages={(0, M2): 1024}),
            "c": held(pages={(1, G1): 200}),
        },
        None,
        [],
    ),
    (
        "reserved pages count",
        {"a": None, "b": None},
        {"a": held(pages={(2, G1): 100}), "b": held(pages={(2, G1): 100})},
        HostRestrictions(reserved_pages=(((2, G1), 30),)),
        [
            (
                "slice.overlap-pages",
                ["a", "b"],
                ("194 1G pages for guests", "30 kept by"),
            )
        ],
    ),
    (
        "child's GPU outside its parent",
        {"p": None, "a": "p"},
        {"p": held(pci={GPU_A}), "a": held(pci={GPU_A, GPU_B})},
        None,
        [("slice.not-inside-parent", ["a", "p"], (f"PCI device {GPU_B}",))],
    ),
    (
        "child's mdev outside its parent",
        {"p": None, "a": "p"},
        {"p": held(), "a": held(mdevs={MDEV})},
        None,
        [("slice.not-inside-parent", ["a", "p"], (f"mdev {MDEV}",))],
    ),
    (
        "child's pinned CPUs outside its parent",
        {"p": None, "a": "p"},
        {"p": held({1, 2, 3}), "a": held({3, 4, 5})},
        None,
        [
            (
                "slice.not-inside-parent",
                ["a", "p"],
                ("vCPUs pinned to host CPU(s) 4-5",),
            )
        ],
    ),
    (
        "child's memory outside its parent",
        {"p": None, "a": "p"},
        {
            "p": held(pages={(0, G1): 96}),
            "a": held(pages={(0, G1): 64, (1, G1): 32}),
        },
        None,
        [
            (
                "slice.not-inside-parent",
                ["a", "p"],
                ("32 pages of 1G on host cell 1 (its parent holds 0)",),
            )
        ],
    ),
    (
        "a slice whose template did not render holds nothing",
        SIBLINGS,
        {"p": held(pci={GPU_A}), "a": held(pci={GPU_A})},
        None,
        [],
    ),
]


@pytest.mark.parametrize(
    "parents,holdings,restrictions,expected",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_overlaps(parents, holdings, restrictions, expected):
    problems = check_slice_overlaps(
        tree_of(parents), holdings, TOPOLOGY, restrictions
    )
    assert [(p.code, p.value["slices"]) for p in problems] == [
        (code, slices) for code, slices, _ in expected
    ]
    for problem, (_, slices, words) in zip(problems, expected, strict=True):
        assert problem.key == "[libvirt] slice_spec"
        assert problem.exit_status == 2
        for word in [*slices, *words]:
            assert word in problem.message, problem.message


def test_shared_items_are_listed_in_the_value():
    problems = check_slice_overlaps(
        tree_of({"a": None, "b": None}),
        {
            "a": held({1, 2, 3}, pci={GPU_A, GPU_B}, mdevs={MDEV}),
            "b": held({2, 3, 9}, pci={GPU_B}, mdevs={MDEV}),
        },
        TOPOLOGY,
    )
    assert [p.to_dict()["value"] for p in problems] == [
        {"slices": ["a", "b"], "pci": [GPU_B], "mdevs": [MDEV]},
        {"slices": ["a", "b"], "cpus": "2-3"},
    ]


def test_many_leaves_stay_fast():
    """A host cut into 64 leaves under 8 parents: the pairwise checks
    index holders by item, the page check walks the tree once per pool."""
    parents = {"root": None}
    holdings = {"root": held(range(1, 129), pages={(0, G1): 128})}
    for p in range(8):
        parents[f"p{p}"] = "root"
        cpus = range(1 + 16 * p, 17 + 16 * p)
        holdings[f"p{p}"] = held(cpus, pages={(0, G1): 16})
        for leaf in range(8):
            name = f"l{p}_{leaf}"
            parents[name] = f"p{p}"
            holdings[name] = held(
                {1 + 16 * p + 2 * leaf, 2 + 16 * p + 2 * leaf},
                pages={(0, G1): 2},
            )
    assert check_slice_overlaps(tree_of(parents), holdings, TOPOLOGY) == ()
    holdings["l7_7"] = held({1, 2}, pages={(0, G1): 2})
    problems = check_slice_overlaps(tree_of(parents), holdings, TOPOLOGY)
    assert [(p.code, p.value["slices"]) for p in problems] == [
        ("slice.not-inside-parent", ["l7_7", "p7"]),
        ("slice.overlap-cpu", ["p0", "l7_7"]),
        ("slice.overlap-cpu", ["l0_0", "l7_7"]),
    ]


@st.composite
def _forests(draw):
    """{slice: parent} (parents come first) and {slice: 1G pages on cell 0}."""
    count = draw(st.integers(1, 9))
    parents = {}
    for i in range(count):
        names = list(parents)
        parents[f"s{i}"] = draw(st.sampled_from([None, *names]))
    pages = {n: draw(st.integers(0, 300)) for n in parents}
    return parents, pages


@settings(max_examples=300, deadline=None)
@given(_forests())
def test_pages_check_agrees_with_every_set_that_may_run_together(forest):
    """overlap-pages is reported exactly when some set of two or more
    mutually non-conflicting slices holding pages exceeds the pool, and
    pages-over-pool for exactly the slices over it alone (brute force
    over every subset)."""
    parents, pages = forest
    tree = tree_of(parents)
    holdings = {
        n: held(pages={(0, G1): p} if p else {}) for n, p in pages.items()
    }
    codes = [
        (p.code, tuple(p.value["slices"]))
        for p in check_slice_overlaps(tree, holdings, TOPOLOGY)
    ]
    names = [n for n in parents if pages[n]]
    together_over = any(
        sum(pages[n] for n in group) > 224
        for size in range(2, len(names) + 1)
        for group in itertools.combinations(names, size)
        if all(
            b not in tree.conflicts(a)
            for a, b in itertools.combinations(group, 2)
        )
    )
    assert ("slice.overlap-pages" in {c for c, _ in codes}) == together_over
    assert [s for c, s in codes if c == "slice.pages-over-pool"] == [
        (n,) for n in parents if pages[n] > 224
    ]
    for code, group in codes:
        if code == "slice.overlap-pages":
            assert len(group) >= 2
            assert sum(pages[n] for n in group) > 224
            for a, b in itertools.combinations(group, 2):
                assert b not in tree.conflicts(a)
