"""The unit-chain encoding of a slice request (DESIGN.md section 4).

Placement takes every resource class of one request group from a single
provider, so the spec's literal "4 of the 1-GPU class and 1 of the 4-GPU
class" never matches.  Instead each non-leaf slice counts the leaves under
it in a units class, and a request for a slice consumes one unit per leaf
it covers on every ancestor.  Taking a slice therefore drains its
ancestors' units (they become unallocatable) and taking an ancestor drains
all of its own units (its descendants become unallocatable), atomically,
in one allocation.  ``same_subtree`` is given once per chain edge: a single
``same_subtree`` over the whole chain was measured to be wrong.
"""

import dataclasses

from nova_slices.errors import NovaSlicesError
from nova_slices.slices import FLAVOR_CLASS_KEY  # nova/ reads it here
from nova_slices.slices.tree import HOST_UNITS, units_class

SLICE_GROUP = "_S"
#: Nova's flavor-derived root classes a slice guest does not take: the
#: slice's template fixes its CPUs and memory.  DISK_GB is zeroed only in
#: the query form (the command line's slice hosts report no disk); a Nova
#: flavor's disk is taken from the DISK_GB Nova reports on the root.
ROOT_ZERO = ("VCPU", "PCPU", "MEMORY_MB", "DISK_GB")
NOVA_ROOT_ZERO = ("VCPU", "PCPU", "MEMORY_MB")


def ancestor_group(level):
    """Group suffix of the ``level``-th ancestor (1 = parent)."""
    return f"_A{level}"


@dataclasses.dataclass(frozen=True)
class SliceRequest:
    """What to ask Placement for to get one slice of ``resource_class``."""

    resource_class: str
    #: group suffix -> {resource class: amount}: the root's (``""``),
    #: the slice's, then its ancestors' nearest first
    groups: dict
    #: pairs of group suffixes, child last
    same_subtree: tuple
    group_policy: str = "none"
    #: DeviceGroups asked for next to the slice (a VF, a vGPU)
    devices: tuple = ()

    def with_devices(self, devices):
        return dataclasses.replace(self, devices=tuple(devices))

    @property
    def suffixes(self):
        """Every request group's suffix (``""`` for the unsuffixed)."""
        return list(self.groups) + [d.suffix for d in self.devices]

    def query_params(self):
        """GET /allocation_candidates parameters (a list of pairs).

        Devices asked for in the unsuffixed group join the root's group:
        Placement takes one ``resources`` parameter, whose resources may
        come from any provider of the tree.
        """
        extra = {}
        for device in self.devices:
            if device.suffix == "":
                extra.update(dict(device.resources))
        params = []
        for suffix, resources in self.groups.items():
            merged = {**resources, **extra} if suffix == "" else resources
            params.append((f"resources{suffix}", _resources(merged)))
        for device in self.devices:
            params += [
                (key, value)
                for key, value in device.query_params()
                if not (device.suffix == "" and key == "resources")
            ]
        for pair in self.same_subtree:
            params.append(("same_subtree", ",".join(pair)))
        params.append(("group_policy", self.group_policy))
        return params

    def flavor_specs(self):
        """The contract form: root overrides plus the query parameters."""
        specs = {f"resources:{rc}": "0" for rc in ROOT_ZERO}
        for key, value in self.query_params():
            if key == "same_subtree":
                specs.setdefault(key, []).append(value)
            else:
                specs[key] = value
        return specs

    def nova_flavor_specs(self):
        """Extra specs a Nova flavor can carry (no ``same_subtree``).

        Nova drops ``same_subtree`` from flavors, so Placement may offer a
        candidate whose groups do not form a chain; spawn re-checks the
        chain (:func:`slice_from_allocation`) and refuses such a
        candidate.  The class key names the slice class the flavor asks
        for.
        """
        specs = {f"resources:{rc}": "0" for rc in NOVA_ROOT_ZERO}
        for suffix, resources in self.groups.items():
            for rc, amount in resources.items():
                specs[f"resources{suffix}:{rc}"] = str(amount)
        specs["group_policy"] = self.group_policy
        specs[FLAVOR_CLASS_KEY] = self.resource_class
        return specs


def _resources(resources):
    return ",".join(f"{rc}:{amount}" for rc, amount in resources.items())


class UnknownSliceClass(NovaSlicesError):
    code = "slice.unknown-class"


def slice_request(tree, resource_class):
    """Build the unit-chain request for one slice of ``resource_class``."""
    shape = tree.classes.get(resource_class)
    if shape is None:
        raise UnknownSliceClass(
            f"--slice-class {resource_class!r} is not a slice class of this "
            f"host; configured classes: {', '.join(sorted(tree.classes))}",
            key="slice_class",
            value=resource_class,
        )
    slice_group = {resource_class: 1}
    if not shape.is_leaf:
        slice_group[units_class(resource_class)] = shape.leaves
    # the unsuffixed group: the root's units, so every candidate touches
    # the compute node (HOST_UNITS)
    groups = {"": {HOST_UNITS: shape.leaves}, SLICE_GROUP: slice_group}
    same_subtree = []
    below = SLICE_GROUP
    for level, ancestor_rc in enumerate(shape.ancestor_classes, start=1):
        suffix = ancestor_group(level)
        groups[suffix] = {units_class(ancestor_rc): shape.leaves}
        same_subtree.append((suffix, below))
        below = suffix
    return SliceRequest(resource_class, groups, tuple(same_subtree))


def slice_allocation(tree, name):
    """The exact per-slice resources one claim of slice ``name`` takes.

    Returns {slice name: {resource class: amount}}: what Placement would
    allocate for a candidate that picked this slice.
    """
    s = tree.slices[name]
    alloc = {name: {s.resource_class: 1}}
    if not s.is_leaf:
        alloc[name][units_class(s.resource_class)] = s.leaves
    for ancestor in s.ancestors:
        rc = units_class(tree.slices[ancestor].resource_class)
        alloc[ancestor] = {rc: s.leaves}
    return alloc


def all_flavor_specs(tree):
    """For each slice class, both flavor forms (``flavor-specs`` output)."""
    out = {}
    for rc in tree.classes:
        request = slice_request(tree, rc)
        specs = request.flavor_specs()
        specs["nova_flavor"] = request.nova_flavor_specs()
        out[rc] = specs
    return out


def is_chain(mappings, parent_of):
    """Whether a candidate's slice groups form a chain in the provider tree.

    ``mappings`` is a Placement candidate's {group suffix: [provider
    uuids]}; ``parent_of`` maps provider uuids to their parents.  The
    slice group's provider must be the child of the first ancestor
    group's, that one the child of the second's, and so on: what
    ``same_subtree`` would have enforced had Nova sent it.  A candidate
    with no slice group is not a slice candidate (True).
    """
    below = (mappings.get(SLICE_GROUP) or [None])[0]
    if below is None:
        return True
    level = 1
    while ancestor_group(level) in mappings:
        above = mappings[ancestor_group(level)][0]
        if parent_of.get(below) != above:
            return False
        below, level = above, level + 1
    return True


class BrokenChain(NovaSlicesError):
    exit_status = 1
    code = "slice.broken-chain"


def slice_from_allocation(
    tree,
    allocations,
    slice_of_provider,
    device_providers=frozenset(),
    root=None,
):
    """Which slice an allocation claims, after checking it is a chain.

    ``allocations`` is {provider uuid: {resource class: amount}} and
    ``slice_of_provider`` maps provider uuids to slice names.  Nova's
    scheduler cannot send ``same_subtree`` from a flavor, so a candidate
    may pair a slice with units of an ancestor that is not its own; such an
    allocation would let two conflicting slices be used together.  We
    refuse it (the build fails and Nova reschedules).  Allocations on
    ``device_providers`` are the guest's devices, bound separately.  On
    the compute node -- ``root``, or else the provider holding
    HOST_UNITS -- the units must be the slice's leaf count; anything else
    there (a Nova flavor's DISK_GB) is the root's business.  With
    ``root`` given, the units are required.
    """
    named = {}
    host_units = None
    for rp, resources in allocations.items():
        if rp == root or (
            root is None
            and HOST_UNITS in resources
            and rp not in slice_of_provider
        ):
            host_units = resources.get(HOST_UNITS, 0)
            continue
        if rp in device_providers:
            continue
        name = slice_of_provider.get(rp)
        if name is None:
            if any(amount for amount in resources.values()):
                raise BrokenChain(
                    f"allocation takes {resources} from provider {rp}, "
                    "which is not a slice of this host"
                )
            continue
        named[name] = dict(resources)
    tokens = [
        n for n, res in named.items() if res.get(tree.slices[n].resource_class)
    ]
    if len(tokens) != 1:
        raise BrokenChain(
            "allocation must take exactly one slice token, took "
            f"{sorted(tokens) or 'none'}"
        )
    expected = slice_allocation(tree, tokens[0])
    if named != expected:
        raise BrokenChain(
            f"allocation {named} does not follow slice {tokens[0]!r}'s "
            f"ancestor chain; expected {expected}"
        )
    leaves = tree.slices[tokens[0]].leaves
    if root is not None and host_units is None:
        host_units = 0
    if host_units is not None and host_units != leaves:
        raise BrokenChain(
            f"allocation takes {host_units} {HOST_UNITS} from the compute "
            f"node for slice {tokens[0]!r}, which has {leaves} leaves"
        )
    return tokens[0]
