"""``[devices] enabled_mdev_types`` resolved against the host's devices.

The result says, for every enabled type, which parent devices offer it,
under which Placement resource class and with what cap.  Mistakes are
startup errors naming the option and the value: an address under two
types, an address that is no device of this host, a type a listed device
does not support, a type no device supports, two types without
addresses (which one would take the unlisted devices is ambiguous, so we
refuse rather than guess), a resource class Placement would refuse, and
a standard class other than VGPU.
"""

import dataclasses
import re

import os_resource_classes as orc
from oslo_config import cfg

from nova_slices.conf.names import (
    STANDARD_CLASSES,
    as_custom,
    custom_class_problem,
)
from nova_slices.errors import ConfigError

OPTION = "[devices] enabled_mdev_types"


@dataclasses.dataclass(frozen=True)
class MdevTypeConfig:
    type: str
    resource_class: str
    max_instances: int | None
    #: parent PCI addresses offering this type, sorted
    parents: tuple


def _fail(message, code, key, value):
    return ConfigError(message, code=f"config.{code}", key=key, value=value)


def resource_class(mdev_type, value):
    """VGPU, CUSTOM_X, or X -> CUSTOM_X (upper case).

    Other standard classes are refused: mdevs reported as MEMORY_MB or
    PCPU would be handed by Placement to guests asking for memory or CPUs
    (Nova allows VGPU and custom classes only).
    """
    key = f"[mdev_{mdev_type}] mdev_class"
    if value == orc.VGPU:
        return value
    if value in STANDARD_CLASSES:
        raise _fail(
            f"{key} = {value!r} is a standard resource class for something "
            "else; an mdev type is VGPU or a custom class (e.g. "
            "CUSTOM_GPU_LARGE)",
            "mdev-class-standard",
            key,
            value,
        )
    name = as_custom(value)
    why = custom_class_problem(name)
    if why:
        raise _fail(
            f"{key} = {value!r}: {name!r} {why}; use VGPU or a custom "
            "class such as CUSTOM_GPU_LARGE",
            "mdev-class-invalid",
            key,
            value,
        )
    return name


def _group(conf, mdev_type):
    """(addresses, class, max) of ``[mdev_<type>]``, read safely."""
    try:
        group = conf[f"mdev_{mdev_type}"]
        return (
            list(group.device_addresses),
            group.mdev_class,
            group.max_instances,
        )
    except cfg.Error as exc:
        raise _fail(
            f"[mdev_{mdev_type}]: {exc}",
            "invalid",
            f"[mdev_{mdev_type}]",
            None,
        ) from None


def _normalize(address):
    text = address.strip().lower()
    if re.fullmatch(r"[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", text):
        text = "0000:" + text
    return text


def resolve_mdev_types(conf, devices):
    """Tuple of MdevTypeConfig for the enabled types, checked."""
    types = list(conf.devices.enabled_mdev_types)
    duplicate = sorted({t for t in types if types.count(t) > 1})
    if duplicate:
        raise _fail(
            f"{OPTION} lists {duplicate} more than once",
            "mdev-type-duplicate",
            OPTION,
            duplicate[0],
        )
    by_address = devices.by_address()
    owner = {}
    listed = {}
    unlisted = []
    values = {t: _group(conf, t) for t in types}
    for t in types:
        key = f"[mdev_{t}] device_addresses"
        addresses = [_normalize(a) for a in values[t][0]]
        if not addresses:
            unlisted.append(t)
            continue
        for address in addresses:
            device = by_address.get(address)
            if device is None:
                raise _fail(
                    f"{key} names {address}, which is not a PCI device of "
                    "this host",
                    "mdev-device-missing",
                    key,
                    address,
                )
            if address in owner:
                raise _fail(
                    f"{key} names {address}, which [mdev_{owner[address]}] "
                    "already has; a device offers one enabled type",
                    "mdev-device-twice",
                    key,
                    address,
                )
            supported = {m.name for m in device.mdev_types}
            if t not in supported:
                raise _fail(
                    f"{key} names {address}, which does not support {t}; "
                    f"it supports {sorted(supported) or 'no mdev type'}",
                    "mdev-type-unsupported",
                    key,
                    address,
                )
            owner[address] = t
        listed[t] = tuple(sorted(addresses))
    if len(unlisted) > 1:
        raise _fail(
            f"{OPTION}: types {unlisted} all leave device_addresses empty; "
            "at most one type may take the unlisted devices (set "
            "[mdev_<type>] device_addresses for the others)",
            "mdev-types-ambiguous",
            OPTION,
            ",".join(unlisted),
        )
    out = []
    for t in types:
        _, mdev_class, max_instances = values[t]
        parents = listed.get(t)
        if parents is None:
            parents = tuple(
                sorted(
                    d.address
                    for d in devices.pci
                    if d.address not in owner
                    and any(m.name == t for m in d.mdev_types)
                )
            )
            if not parents:
                raise _fail(
                    f"{OPTION}: no device of this host supports {t}",
                    "mdev-type-unsupported",
                    OPTION,
                    t,
                )
        out.append(
            MdevTypeConfig(
                t,
                resource_class(t, mdev_class),
                max_instances,
                parents,
            )
        )
    return tuple(out)
