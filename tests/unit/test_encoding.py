"""The unit-chain encoding, its flavor forms and the pure provider tree."""

import itertools

import pytest

from nova_slices.errors import ConfigError
from nova_slices.provider_tree import build_provider_tree
from nova_slices.slices import encoding
from nova_slices.slices.spec import SliceSpec
from nova_slices.slices.tree import HOST_UNITS, build_tree, units_class
from tests.unit.test_slice_spec import seed_tree


def test_seed_requests_match_design_section_4():
    tree = seed_tree()
    eight = encoding.slice_request(tree, "CUSTOM_S8")
    # section 4's groups, plus the root's units (section 7: every slice
    # candidate must touch the compute node)
    assert eight.query_params() == [
        ("resources", "CUSTOM_SLICE_HOST_UNITS:8"),
        ("resources_S", "CUSTOM_S8:1,CUSTOM_S8_UNITS:8"),
        ("group_policy", "none"),
    ]
    four = encoding.slice_request(tree, "CUSTOM_S4")
    assert four.query_params() == [
        ("resources", "CUSTOM_SLICE_HOST_UNITS:4"),
        ("resources_S", "CUSTOM_S4:1,CUSTOM_S4_UNITS:4"),
        ("resources_A1", "CUSTOM_S8_UNITS:4"),
        ("same_subtree", "_A1,_S"),
        ("group_policy", "none"),
    ]
    one = encoding.slice_request(tree, "CUSTOM_S1")
    assert one.query_params() == [
        ("resources", "CUSTOM_SLICE_HOST_UNITS:1"),
        ("resources_S", "CUSTOM_S1:1"),
        ("resources_A1", "CUSTOM_S4_UNITS:1"),
        ("resources_A2", "CUSTOM_S8_UNITS:1"),
        ("same_subtree", "_A1,_S"),
        ("same_subtree", "_A2,_A1"),
        ("group_policy", "none"),
    ]


def test_flavor_specs_both_forms():
    specs = encoding.all_flavor_specs(seed_tree())
    one = specs["CUSTOM_S1"]
    assert one["resources:VCPU"] == "0"
    assert one["resources:MEMORY_MB"] == "0"
    assert one["resources:DISK_GB"] == "0"
    assert one["resources:PCPU"] == "0"
    assert one["resources"] == "CUSTOM_SLICE_HOST_UNITS:1"
    assert one["same_subtree"] == ["_A1,_S", "_A2,_A1"]
    assert one["resources_A2"] == "CUSTOM_S8_UNITS:1"
    nova = one["nova_flavor"]
    assert "same_subtree" not in nova
    assert nova["resources_S:CUSTOM_S1"] == "1"
    assert nova["resources_A1:CUSTOM_S4_UNITS"] == "1"
    assert nova["group_policy"] == "none"
    # Nova takes the flavor's disk from the root's DISK_GB; CPUs and
    # memory are the template's
    assert nova["resources:CUSTOM_SLICE_HOST_UNITS"] == "1"
    assert {k for k, v in nova.items() if v == "0"} == {
        "resources:VCPU",
        "resources:PCPU",
        "resources:MEMORY_MB",
    }
    assert nova[encoding.FLAVOR_CLASS_KEY] == "CUSTOM_S1"


def test_unknown_class():
    with pytest.raises(encoding.UnknownSliceClass) as info:
        encoding.slice_request(seed_tree(), "CUSTOM_NOPE")
    assert "CUSTOM_S1" in info.value.message


def _capacity(tree):
    cap = {("root", HOST_UNITS): tree.leaves}
    for s in tree.slices.values():
        cap[(s.name, s.resource_class)] = 1
        if not s.is_leaf:
            cap[(s.name, units_class(s.resource_class))] = s.leaves
    return cap


def _claimable(tree, in_use, name):
    """Would Placement's capacity check admit slice ``name`` now?"""
    used = {}
    for taken in list(in_use) + [name]:
        key = ("root", HOST_UNITS)
        used[key] = used.get(key, 0) + tree.slices[taken].leaves
        for provider, res in encoding.slice_allocation(tree, taken).items():
            for rc, amount in res.items():
                used[(provider, rc)] = used.get((provider, rc), 0) + amount
    cap = _capacity(tree)
    return all(amount <= cap[key] for key, amount in used.items())


def _oracle(tree, in_use, name):
    return name not in in_use and not (tree.conflicts(name) & set(in_use))


def test_unit_chain_agrees_with_oracle_on_every_state():
    """Every conflict-free set of used slices, every slice: same answer."""
    tree = seed_tree()
    names = list(tree.slices)
    states = [()]
    seen = {frozenset()}
    while states:
        state = states.pop()
        for name in names:
            expected = _oracle(tree, state, name)
            assert _claimable(tree, state, name) == expected, (state, name)
            if expected:
                nxt = frozenset(state) | {name}
                if nxt not in seen:
                    seen.add(nxt)
                    states.append(tuple(nxt))
    # the design's count of reachable states for the seed tree
    assert len(seen) == 290


def test_slice_from_allocation_accepts_only_chains():
    tree = seed_tree()
    ptree = build_provider_tree("host", tree)
    uuid_of = ptree.provider_of_slice()
    slice_of = ptree.slice_of_provider()

    def alloc(mapping):
        return {uuid_of[n]: res for n, res in mapping.items()}

    good = alloc(encoding.slice_allocation(tree, "1_6"))
    assert encoding.slice_from_allocation(tree, good, slice_of) == "1_6"
    # leaf under 4_2 paired with units of 4_1: a broken chain
    broken = alloc(
        {
            "1_6": {"CUSTOM_S1": 1},
            "4_1": {"CUSTOM_S4_UNITS": 1},
            "8_1": {"CUSTOM_S8_UNITS": 1},
        }
    )
    with pytest.raises(encoding.BrokenChain):
        encoding.slice_from_allocation(tree, broken, slice_of)
    two_tokens = alloc({"1_1": {"CUSTOM_S1": 1}, "1_2": {"CUSTOM_S1": 1}})
    with pytest.raises(encoding.BrokenChain):
        encoding.slice_from_allocation(tree, two_tokens, slice_of)


def test_provider_tree_nests_slices_and_counts_leaves_on_root():
    tree = seed_tree()
    ptree = build_provider_tree("gpu-host", tree)
    root = ptree.root
    assert root.name == "gpu-host" and root.parent_uuid is None
    # no VCPU/PCPU/MEMORY_MB/DISK_GB: only the leaves every slice takes
    assert {rc: i.total for rc, i in root.inventories.items()} == {
        HOST_UNITS: 8
    }
    by_name = {p.name: p for p in ptree.providers}
    assert by_name["gpu-host_slice_8_1"].parent_uuid == root.uuid
    assert by_name["gpu-host_slice_4_2"].parent_uuid == (
        by_name["gpu-host_slice_8_1"].uuid
    )
    assert by_name["gpu-host_slice_1_7"].parent_uuid == (
        by_name["gpu-host_slice_4_2"].uuid
    )
    inv = by_name["gpu-host_slice_4_1"].inventories
    assert {rc: i.total for rc, i in inv.items()} == {
        "CUSTOM_S4": 1,
        "CUSTOM_S4_UNITS": 4,
    }
    assert {
        rc: i.total
        for rc, i in by_name["gpu-host_slice_8_1"].inventories.items()
    } == {"CUSTOM_S8": 1, "CUSTOM_S8_UNITS": 8}
    assert set(by_name["gpu-host_slice_1_1"].inventories) == {"CUSTOM_S1"}
    # stable: same input, same uuids; parents precede children
    assert build_provider_tree("gpu-host", tree) == ptree
    index = {p.uuid: i for i, p in enumerate(ptree.providers)}
    for p in ptree.providers[1:]:
        assert index[p.parent_uuid] < index[p.uuid]
    assert len({p.uuid for p in ptree.providers}) == 12


def test_chain_same_subtree_pairs_are_edges():
    tree = seed_tree()
    for rc in tree.classes:
        req = encoding.slice_request(tree, rc)
        suffixes = [s for s in req.groups if s]  # the root's is no edge
        assert list(
            itertools.chain.from_iterable(
                reversed(p) for p in req.same_subtree
            )
        ) == [
            x
            for i, s in enumerate(suffixes[:-1])
            for x in (s, suffixes[i + 1])
        ]


def test_root_units_must_match_the_slice():
    """A Nova candidate also holds the flavor's DISK_GB on the root: that is
    the root's business; its HOST_UNITS must be the slice's leaf count."""
    tree = seed_tree()
    ptree = build_provider_tree("host", tree)
    uuid_of = ptree.provider_of_slice()
    slice_of = ptree.slice_of_provider()
    root = ptree.root.uuid
    chain = {
        uuid_of[n]: res
        for n, res in encoding.slice_allocation(tree, "4_2").items()
    }
    good = {**chain, root: {HOST_UNITS: 4, "DISK_GB": 20}}
    assert (
        encoding.slice_from_allocation(tree, good, slice_of, root=root)
        == "4_2"
    )
    short = {**chain, root: {HOST_UNITS: 1}}
    with pytest.raises(encoding.BrokenChain) as info:
        encoding.slice_from_allocation(tree, short, slice_of, root=root)
    assert "4 leaves" in info.value.message


@pytest.mark.parametrize("rc", [HOST_UNITS, "CUSTOM_SLICE_HOST"])
def test_a_slice_class_may_not_name_the_root_class(rc):
    with pytest.raises(ConfigError) as info:
        build_tree(
            [
                SliceSpec("a", rc, "a.j2", None),
                SliceSpec("b", "CUSTOM_X", "b.j2", "a"),
            ]
        )
    assert info.value.code == "config.slice-class-collision"
    assert HOST_UNITS in info.value.message
