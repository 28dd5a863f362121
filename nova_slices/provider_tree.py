"""The provider tree this host should have in Placement (pure).

Built from the host's name and its slice tree; the Placement sync compares
it with what Placement holds and writes only the difference.  Provider
uuids are derived from names (uuid5) so that every process on the host,
and every restart, computes the same tree without shared state.
"""

import dataclasses
import uuid

import os_traits

from nova_slices.slices.tree import HOST_UNITS, units_class

#: namespace for the uuids of this package's providers
NAMESPACE = uuid.UUID("5b2f1c1e-8f2a-4d0e-9a8e-6e6f76615f73")
SLICE_PREFIX = "_slice_"


@dataclasses.dataclass(frozen=True)
class Inventory:
    total: int
    reserved: int = 0
    min_unit: int = 1
    max_unit: int | None = None
    step_size: int = 1
    allocation_ratio: float = 1.0

    def to_placement(self):
        d = dataclasses.asdict(self)
        if d["max_unit"] is None:
            d["max_unit"] = self.total
        return d


@dataclasses.dataclass(frozen=True)
class Provider:
    name: str
    uuid: str
    parent_uuid: str | None
    #: resource class -> Inventory
    inventories: dict
    traits: frozenset = frozenset()
    #: the slice this provider stands for, if any
    slice_name: str | None = None


@dataclasses.dataclass(frozen=True)
class ProviderTree:
    """Providers ordered parents first."""

    providers: tuple

    @property
    def root(self):
        return self.providers[0]

    def by_uuid(self):
        return {p.uuid: p for p in self.providers}

    def slice_of_provider(self):
        return {p.uuid: p.slice_name for p in self.providers if p.slice_name}

    def provider_of_slice(self):
        return {p.slice_name: p.uuid for p in self.providers if p.slice_name}

    def resource_classes(self):
        return sorted({rc for p in self.providers for rc in p.inventories})


def root_uuid(hostname):
    return str(uuid.uuid5(NAMESPACE, f"compute-node:{hostname}"))


def slice_provider_name(hostname, slice_name):
    return f"{hostname}{SLICE_PREFIX}{slice_name}"


def slice_provider_uuid(root, slice_name):
    return str(uuid.uuid5(NAMESPACE, f"{root}/slice/{slice_name}"))


#: what the compute node says about itself
ROOT_TRAITS = frozenset({os_traits.COMPUTE_SOCKET_PCI_NUMA_AFFINITY})


def build_provider_tree(
    hostname,
    slice_tree,
    compute_node_uuid=None,
    devices=(),
    root_inventories=None,
):
    """Desired providers for a host: slices and device providers.

    A host with slices reports no VCPU, PCPU, MEMORY_MB or DISK_GB on its
    root (the libvirt-slices spec's first version does not mix slices
    with dynamic guests on one host), only ``HOST_UNITS``, one per leaf
    slice, which every slice request takes from.  A host without slices
    reports ``root_inventories``
    (:func:`nova_slices.compute.inventory.root_inventories`).  ``devices``
    are the device providers (:mod:`nova_slices.devices.providers`),
    built for the same root uuid.
    """
    if root_inventories and slice_tree.slices:
        raise ValueError("a host with slices reports no root inventory")
    root = compute_node_uuid or root_uuid(hostname)
    if slice_tree.slices:
        root_inventories = {HOST_UNITS: Inventory(total=slice_tree.leaves)}
    providers = [
        Provider(
            hostname, root, None, dict(root_inventories or {}), ROOT_TRAITS
        )
    ]
    for s in slice_tree.parents_first():
        inventories = {s.resource_class: Inventory(total=1)}
        if not s.is_leaf:
            inventories[units_class(s.resource_class)] = Inventory(
                total=s.leaves
            )
        parent = slice_provider_uuid(root, s.parent) if s.parent else root
        providers.append(
            Provider(
                slice_provider_name(hostname, s.name),
                slice_provider_uuid(root, s.name),
                parent,
                inventories,
                slice_name=s.name,
            )
        )
    providers.extend(devices)
    return ProviderTree(tuple(providers))
