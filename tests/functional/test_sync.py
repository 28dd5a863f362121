"""Provider tree sync against the real Placement service."""

import dataclasses

from nova_slices.placement import claims
from nova_slices.placement.sync import ProviderTreeSync
from nova_slices.provider_tree import Inventory, build_provider_tree
from nova_slices.slices import encoding
from nova_slices.slices.tree import load_tree
from tests.functional.conftest import make_conf


def _tree(state_path, **overrides):
    conf = make_conf(state_path, **overrides)
    return build_provider_tree("gpu8-2s", load_tree(conf))


def _placement_view(client, root):
    rps = client.get("/resource_providers", params={"in_tree": root}).body[
        "resource_providers"
    ]
    view = {}
    for rp in rps:
        inv = client.get(f"/resource_providers/{rp['uuid']}/inventories").body
        traits = client.get(f"/resource_providers/{rp['uuid']}/traits").body
        view[rp["name"]] = (
            rp["parent_provider_uuid"],
            {
                rc: (i["total"], i["reserved"])
                for rc, i in inv["inventories"].items()
            },
            sorted(traits["traits"]),
        )
    return view


def test_first_sync_builds_the_tree_and_second_makes_no_call(
    placement, state_path
):
    tree = _tree(state_path)
    sync = ProviderTreeSync(placement)
    result = sync.sync(tree)
    assert len(result.created) == 12
    view = _placement_view(placement, tree.root.uuid)
    assert set(view) == {p.name for p in tree.providers}
    by_name = {p.name: p for p in tree.providers}
    for name, (parent, inv, traits) in view.items():
        assert parent == by_name[name].parent_uuid
        assert inv == {
            rc: (i.total, i.reserved)
            for rc, i in by_name[name].inventories.items()
        }
        assert traits == sorted(by_name[name].traits)
    # no VCPU/PCPU/MEMORY_MB/DISK_GB: one unit per leaf slice
    assert view["gpu8-2s"][1] == {"CUSTOM_SLICE_HOST_UNITS": (8, 0)}
    assert view["gpu8-2s_slice_8_1"][1] == {
        "CUSTOM_SLICE_8_GPU_V1": (1, 0),
        "CUSTOM_SLICE_8_GPU_V1_UNITS": (8, 0),
    }

    before = dict(placement.calls)
    again = sync.sync(tree)
    assert not again.changed
    assert placement.calls == before, "an unchanged sync made calls"

    # a new process (fresh cache) reads but writes nothing
    writes = placement.writes()
    fresh = ProviderTreeSync(placement).sync(tree)
    assert not fresh.changed
    assert placement.writes() == writes


def test_generation_conflict_is_refreshed_and_retried(placement, state_path):
    tree = _tree(state_path)
    sync = ProviderTreeSync(placement)
    sync.sync(tree)
    leaf = next(p for p in tree.providers if p.slice_name == "1_1")
    # someone else bumps the provider's generation behind our back
    gen = placement.get(f"/resource_providers/{leaf.uuid}").body["generation"]
    resp = placement.put(
        f"/resource_providers/{leaf.uuid}/traits",
        {"resource_provider_generation": gen, "traits": ["COMPUTE_NODE"]},
    )
    assert resp.status == 200
    changed = dataclasses.replace(
        leaf, inventories={"CUSTOM_SLICE_1_GPU_V1": Inventory(1, reserved=1)}
    )
    providers = tuple(
        changed if p.uuid == leaf.uuid else p for p in tree.providers
    )
    result = sync.sync(dataclasses.replace(tree, providers=providers))
    assert leaf.name in result.updated
    view = _placement_view(placement, tree.root.uuid)
    assert view[leaf.name][1] == {"CUSTOM_SLICE_1_GPU_V1": (1, 1)}
    assert view[leaf.name][2] == []  # our desired traits win


def test_stale_providers_removed_children_first_unless_allocated(
    placement, state_path, tmp_path
):
    full = _tree(state_path)
    sync = ProviderTreeSync(placement)
    sync.sync(full)
    slice_tree = load_tree(make_conf(state_path))
    # a guest holds 1_1 (and units of 4_1 and 8_1)
    claim = claims.claim_slice(
        placement,
        slice_tree,
        full,
        "CUSTOM_SLICE_1_GPU_V1",
        "11111111-2222-3333-4444-555555555555",
        "p" * 32,
        "u" * 32,
    )
    assert claim.slice_name == "1_1"
    # the operator removes 4_1 and its leaves 1_1..1_4 from the config
    gone = ("4_1", "1_1", "1_2", "1_3", "1_4")
    specs = [
        s
        for s in make_conf(state_path).libvirt.slice_spec
        if not any(f'"{n}"' in s for n in gone)
    ]
    smaller = _tree(state_path, libvirt__slice_spec=specs)
    result = sync.sync(smaller)
    # empty stale leaves are deleted
    assert sorted(result.deleted) == [
        "gpu8-2s_slice_1_2",
        "gpu8-2s_slice_1_3",
        "gpu8-2s_slice_1_4",
    ]
    # the held leaf and its parent (holding the guest's units) stay
    assert result.kept == ["gpu8-2s_slice_1_1", "gpu8-2s_slice_4_1"]
    assert any(
        "gpu8-2s_slice_1_1" in w and claim.consumer in w
        for w in result.warnings
    )
    view = _placement_view(placement, full.root.uuid)
    assert view["gpu8-2s_slice_1_1"][1] == {"CUSTOM_SLICE_1_GPU_V1": (1, 1)}
    assert view["gpu8-2s_slice_4_1"][1] == {
        "CUSTOM_SLICE_4_GPU_V1": (1, 1),
        "CUSTOM_SLICE_4_GPU_V1_UNITS": (4, 4),
    }
    # once the guest is gone, the next sync removes leaf then parent
    claims.release(placement, claim.consumer)
    sync.invalidate()
    result = sync.sync(smaller)
    assert result.deleted == ["gpu8-2s_slice_1_1", "gpu8-2s_slice_4_1"]
    assert set(_placement_view(placement, full.root.uuid)) == {
        p.name for p in smaller.providers
    }
    # and a second sync does not write again
    writes = placement.writes()
    sync.sync(smaller)
    assert placement.writes() == writes


def test_claims_follow_the_chain(placement, state_path):
    full = _tree(state_path)
    ProviderTreeSync(placement).sync(full)
    slice_tree = load_tree(make_conf(state_path))
    claim = claims.claim_slice(
        placement,
        slice_tree,
        full,
        "CUSTOM_SLICE_4_GPU_V1",
        "aaaaaaaa-2222-3333-4444-555555555555",
        "p" * 32,
        "u" * 32,
    )
    assert (
        encoding.slice_from_allocation(
            slice_tree,
            claims.consumer_allocations(placement, claim.consumer),
            full.slice_of_provider(),
        )
        == claim.slice_name
    )
