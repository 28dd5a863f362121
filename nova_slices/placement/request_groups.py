"""Device request groups from ``resources*:`` / ``trait*:`` extra specs.

A slice guest may ask for devices next to its slice (a VF of the NIC, a
vGPU): each granular suffix becomes one Placement request group, and the
unsuffixed resources one unsuffixed group, exactly as Nova translates a
flavor.  A slice's template fixes its CPUs, NUMA cells and memory, so the
``hw:`` keys that shape a dynamic guest have no meaning here and are
refused rather than silently ignored.
"""

import dataclasses

from nova_slices.errors import RequestError
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
    specs = Specs(extra_specs, {})
    resources, traits = resources_and_traits(specs)
    for key in specs.unused():
        raise _fail(
            "slice-spec-unsupported",
            key,
            specs.flavor[key],
            "a slice's template fixes its CPUs, NUMA cells and memory; a "
            "slice guest may only add devices with resources[SUFFIX]:RC=N "
            "and trait[SUFFIX]:NAME=required|forbidden",
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
    required, forbidden = {}, {}
    for (suffix, trait), value in traits:
        if suffix not in groups:
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
