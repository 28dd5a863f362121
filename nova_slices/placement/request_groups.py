"""Placement request groups from a flavor, as Nova translates it (pure).

A slice guest may ask for devices next to its slice (a VF of the NIC, a
vGPU): each granular suffix becomes one Placement request group, and the
unsuffixed resources one unsuffixed group.  A slice's template fixes its
CPUs, NUMA cells and memory, so the ``hw:`` keys that shape a dynamic
guest have no meaning there and are refused rather than silently ignored
(all but ``hw:pci_numa_affinity_policy``, which says how near the slice
its devices must be).

A dynamic guest (:func:`flavor_request`) asks the compute node for what
Nova's ``ResourceRequest`` asks for: VCPU for its shared vCPUs, PCPU for
its dedicated ones (plus one for an isolated emulator thread), MEMORY_MB
and DISK_GB, all in the unsuffixed group, next to its device groups.
"""

import dataclasses

from nova_slices.errors import RequestError
from nova_slices.request.devices import pci_numa_policy
from nova_slices.request.resources import resources_and_traits
from nova_slices.request.specs import Specs

#: root classes a slice flavor zeroes (Nova's resources:VCPU=0 override)
ROOT_CLASSES = ("VCPU", "PCPU", "MEMORY_MB", "DISK_GB")


@dataclasses.dataclass(frozen=True)
class DeviceGroup:
    """One Placement request group: ``resources{suffix}`` and traits."""

    suffix: str
    resources: tuple  # ((resource class, amount), ...)
    required: tuple = ()
    forbidden: tuple = ()

    def query_params(self):
        params = [
            (
                f"resources{self.suffix}",
                ",".join(f"{rc}:{n}" for rc, n in self.resources),
            )
        ]
        traits = list(self.required) + [f"!{t}" for t in self.forbidden]
        if traits:
            params.append((f"required{self.suffix}", ",".join(traits)))
        return params

    def to_dict(self):
        return {
            "suffix": self.suffix,
            "resources": dict(self.resources),
            "required": list(self.required),
            "forbidden": list(self.forbidden),
        }


def _fail(code, key, value, message):
    return RequestError(
        f"{key}={value!r}: {message}",
        code=f"request.{code}",
        key=key,
        value=value,
    ).with_status(2)


def slice_device_groups(extra_specs, reserved_suffixes, slice_classes):
    """DeviceGroups a slice guest's extra specs ask for, checked.

    ``reserved_suffixes`` are the slice request's own groups (a device
    group may not reuse them); ``slice_classes`` are the slice and units
    classes (devices may not ask for slices through the back door).
    """
    return slice_device_request(extra_specs, reserved_suffixes, slice_classes)[
        0
    ]


def slice_device_request(extra_specs, reserved_suffixes, slice_classes):
    """(DeviceGroups, PCI NUMA affinity policy or None) of a slice guest.

    ``hw:pci_numa_affinity_policy`` is the one ``hw:`` key a slice guest
    may carry: it says how near its slice the devices must be
    (:mod:`nova_slices.slices.locality`).
    """
    specs = Specs(extra_specs, {})
    resources, traits = resources_and_traits(specs)
    policy = pci_numa_policy(specs)
    for key in specs.unused():
        raise _fail(
            "slice-spec-unsupported",
            key,
            specs.flavor[key],
            "a slice's template fixes its CPUs, NUMA cells and memory; a "
            "slice guest may only add devices with resources[SUFFIX]:RC=N "
            "and trait[SUFFIX]:NAME=required|forbidden, and say how near "
            "its slice they must be with hw:pci_numa_affinity_policy",
        )
    groups = {}
    for (suffix, rc), amount in resources:
        key = f"resources{suffix}:{rc}"
        if suffix in reserved_suffixes:
            raise _fail(
                "group-suffix-reserved",
                key,
                amount,
                f"group suffix {suffix!r} is the slice request's own; "
                f"reserved: {', '.join(sorted(reserved_suffixes))}",
            )
        if rc in slice_classes:
            raise _fail(
                "slice-class-as-device",
                key,
                amount,
                "slices are requested with --slice-class, not as a device",
            )
        if rc in ROOT_CLASSES:
            if amount:
                raise _fail(
                    "slice-root-resources",
                    key,
                    amount,
                    "a slice guest takes no VCPU, PCPU, MEMORY_MB or "
                    "DISK_GB from the compute node; only 0 is valid",
                )
            continue
        if amount:
            groups.setdefault(suffix, {})[rc] = amount
    return _with_traits(groups, traits), policy


def _with_traits(groups, traits, unsuffixed_group=False):
    """DeviceGroups from {suffix: {rc: amount}} and the trait specs.

    A trait needs a group of its suffix to apply to; the unsuffixed
    group always exists for a dynamic guest (its VCPU, MEMORY_MB...).
    """
    required, forbidden = {}, {}
    for (suffix, trait), value in traits:
        if suffix not in groups and not (unsuffixed_group and suffix == ""):
            key = f"trait{suffix}:{trait}"
            raise _fail(
                "trait-without-group",
                key,
                value,
                f"no resources{suffix}:RC=N asks for a device in group "
                f"{suffix!r}; a trait needs a device group to apply to",
            )
        target = required if value == "required" else forbidden
        target.setdefault(suffix, []).append(trait)
    return tuple(
        DeviceGroup(
            suffix,
            tuple(sorted(groups[suffix].items())),
            tuple(sorted(required.get(suffix, ()))),
            tuple(sorted(forbidden.get(suffix, ()))),
        )
        for suffix in sorted(groups)
    )


@dataclasses.dataclass(frozen=True)
class FlavorRequest:
    """One dynamic guest's Placement request: one allocation in all."""

    #: ((resource class, amount), ...) taken from the compute node
    root: tuple
    #: DeviceGroups; the unsuffixed one also carries ``root``
    groups: tuple
    group_policy: str = "none"

    @property
    def suffixes(self):
        return [g.suffix for g in self.groups]

    @property
    def device_groups(self):
        """The groups as they ask for devices (root classes left out)."""
        root = dict(self.root)
        out = []
        for g in self.groups:
            devices = tuple((rc, n) for rc, n in g.resources if rc not in root)
            if devices:
                out.append(dataclasses.replace(g, resources=devices))
        return tuple(out)

    def query_params(self, root_uuid):
        """GET /allocation_candidates parameters, kept on this host."""
        params = []
        for g in self.groups:
            params += g.query_params()
            params.append((f"in_tree{g.suffix}", root_uuid))
        if any(g.suffix for g in self.groups):
            params.append(("group_policy", self.group_policy))
        return params


def root_resources(request, disk_gb=0):
    """What the compute node gives a dynamic guest (Nova's rules)."""
    dedicated = len(request.dedicated_cpus)
    pcpus = dedicated
    if dedicated and request.emulator_threads_policy == "isolate":
        pcpus += 1
    amounts = (
        ("VCPU", request.vcpus - dedicated),
        ("PCPU", pcpus),
        ("MEMORY_MB", request.memory_mb),
        ("DISK_GB", disk_gb),
    )
    return tuple((rc, n) for rc, n in amounts if n)


def flavor_request(request, disk_gb=0):
    """The FlavorRequest of a dynamic guest's GuestRequest, checked."""
    if type(disk_gb) is not int or disk_gb < 0:
        raise _fail(
            "disk-invalid", "disk_gb", disk_gb, "a whole number of GiB, >= 0"
        )
    root = root_resources(request, disk_gb)
    groups = {"": dict(root)}
    for (suffix, rc), amount in request.resources:
        key = f"resources{suffix}:{rc}"
        if rc in ROOT_CLASSES:
            raise _fail(
                "dynamic-root-resources",
                key,
                amount,
                "a dynamic guest's VCPU, PCPU, MEMORY_MB and DISK_GB come "
                "from --vcpus, --memory-mb, --disk-gb and hw:cpu_policy; "
                "leave this key out",
            )
        if amount:
            groups.setdefault(suffix, {})[rc] = amount
    return FlavorRequest(
        root,
        _with_traits(groups, request.traits, unsuffixed_group=True),
        request.group_policy or "none",
    )
