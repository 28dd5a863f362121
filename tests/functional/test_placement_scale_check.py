"""The scale benchmark's setup and candidate check are right on 2 hosts.

``benchmarks/placement_scale.py`` reports "0 invalid" at 1000 hosts; that
figure means something only if its check counts exactly the usable
slices, and calls a wrong candidate invalid.  Checked here against the
oracle of the model check, with Nova's own query strings.
"""

import copy
import os
import sys

import pytest

from nova_slices.placement.client import expect
from nova_slices.placement.embedded import DB_FILENAME
from nova_slices.placement.wsgi import sqlite_url
from nova_slices.slices.tree import load_tree
from tests.functional.conftest import make_conf

sys.path.insert(
    0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
)
import placement_hosts  # noqa: E402
import placement_scale  # noqa: E402


@pytest.fixture(params=placement_hosts.BASELINES)
def scale(request, placement, state_path):
    tree = load_tree(make_conf(state_path))
    url = sqlite_url(os.path.join(state_path, DB_FILENAME))
    hosts = placement_hosts.build(placement, url, tree, 2, request.param)
    return tree, hosts, placement_scale.nova_queries(tree)


def test_same_hosts_answer_the_plain_flavor_on_the_slice_trees(
    placement, state_path
):
    """The goal's baseline: the plain flavor lands on the slice hosts'
    roots (which also carry a compute node's VCPU and MEMORY_MB), and the
    slice requests still see exactly the production slice inventory."""
    tree = load_tree(make_conf(state_path))
    url = sqlite_url(os.path.join(state_path, DB_FILENAME))
    hosts = placement_hosts.build(
        placement, url, tree, 2, placement_hosts.SAME_HOSTS
    )
    assert hosts.plain == hosts.slice_roots
    queries = placement_scale.nova_queries(tree)
    body = _get(placement, queries[placement_scale.PLAIN])
    roots = {
        rp for c in body["allocation_requests"] for rp in c["allocations"]
    }
    assert roots == set(hosts.slice_roots)
    # host 1 (odd) carries a plain guest's usage on its root
    odd = next(r for r, i in hosts.slice_roots.items() if i == 1)
    usages = expect(
        placement.get(f"/resource_providers/{odd}/usages"), 200
    ).body["usages"]
    assert usages["VCPU"] == placement_hosts.PLAIN_USAGE["VCPU"]
    assert usages["CUSTOM_SLICE_HOST_UNITS"] == 1


def test_unknown_baseline_is_refused(placement, state_path):
    tree = load_tree(make_conf(state_path))
    with pytest.raises(ValueError, match="same-hosts"):
        placement_hosts.build(placement, None, tree, 1, "elsewhere")


def _get(placement, query):
    return expect(
        placement.get(
            "/allocation_candidates?" + query,
            microversion=placement_scale.NOVA_MICROVERSION,
        ),
        200,
    ).body


def test_counts_match_the_oracle(scale, placement):
    tree, hosts, queries = scale
    assert hosts.in_use == {0: set(), 1: {"1_1"}}
    for flavor, query in queries.items():
        assert "limit=1000" in query
        valid, dropped, invalid, nhosts = placement_scale.check(
            hosts, flavor, _get(placement, query)
        )
        assert invalid == 0, flavor
        if flavor in tree.classes:
            usable = sum(
                1
                for i in (0, 1)
                for n in tree.classes[flavor].slices
                if n not in hosts.in_use[i]
                and not tree.conflicts(n) & hosts.in_use[i]
            )
            assert valid == usable, flavor
        else:
            assert valid == nhosts == 2, flavor
    # no same_subtree from a Nova flavor: 1-GPU offers broken chains too
    _, dropped, _, _ = placement_scale.check(
        hosts,
        "CUSTOM_SLICE_1_GPU_V1",
        _get(placement, queries["CUSTOM_SLICE_1_GPU_V1"]),
    )
    assert dropped > 0


def test_a_wrong_candidate_is_invalid(scale, placement):
    tree, hosts, queries = scale
    flavor = "CUSTOM_SLICE_4_GPU_V1"
    body = _get(placement, queries[flavor])
    used = next(
        c
        for c in body["allocation_requests"]
        if hosts.where[next(iter(c["allocations"]))][0] == 1
    )
    # pretend host 1 has 1_5 in use: its 4_2 candidate now conflicts
    hosts.in_use[1] = {"1_1", "1_5"}
    valid, _, invalid, _ = placement_scale.check(hosts, flavor, body)
    assert invalid == 1 and valid == 2  # host 0: 4_1 and 4_2
    hosts.in_use[1] = {"1_1"}
    # a chain missing the root's units is invalid too
    broken = copy.deepcopy(used)
    for rp in list(broken["allocations"]):
        if hosts.where[rp][1] is None:
            broken["allocations"][rp]["resources"].pop(
                "CUSTOM_SLICE_HOST_UNITS"
            )
    _, _, invalid, _ = placement_scale.check(
        hosts, flavor, {"allocation_requests": [broken]}
    )
    assert invalid == 1
