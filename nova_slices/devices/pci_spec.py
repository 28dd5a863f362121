"""``[pci] device_spec``: which PCI devices guests may be given, as what.

Nova's format, one JSON object per value (a list of objects is accepted
too): ``address`` as a glob (``[[domain:]bus:]slot.function``, any part
``*``) or an object of regular expressions per part, ``vendor_id`` and
``product_id`` (``*`` matches any), ``physical_network``,
``resource_class`` (default ``CUSTOM_PCI_<VENDOR>_<PRODUCT>``, as Nova's
PCI-in-Placement names it; other names are upper-cased and prefixed
``CUSTOM_`` unless standard) and ``traits`` (comma separated; non-standard
names likewise prefixed).  Every mistake names the option and the value.

Refused as Nova refuses them: address parts beyond the PCI limits (slot
1f, function 7), ids that are not hex, a ``managed`` that is not a
boolean.  Refused where Nova would fail later or not at all: values of
the wrong JSON type, a key given twice, class names Placement would
refuse (a stray newline, more than 255 characters), and ``devname``,
which Nova resolves through the host's sysfs and which, ignored, would
make the spec match every device.
"""

import dataclasses
import re

import os_traits

from nova_slices.conf import jsonvalue
from nova_slices.conf.names import (
    MAX_LENGTH,
    STANDARD_CLASSES,
    as_custom,
    custom_class_problem,
)
from nova_slices.errors import ConfigError

OPTION = "[pci] device_spec"
KEYS = (
    "address",
    "vendor_id",
    "product_id",
    "physical_network",
    "resource_class",
    "traits",
    "devname",
    "remote_managed",
    "managed",
)
#: Nova's limits (nova/pci/devspec.py): name, largest value, digits shown
_FIELDS = (
    ("domain", 0xFFFF, 4),
    ("bus", 0xFF, 2),
    ("slot", 0x1F, 2),
    ("function", 0x7, 1),
)
_HEX = re.compile(r"[0-9a-fA-F]{1,4}")
_TRAIT_RE = re.compile(r"[A-Z0-9_]+")
_STANDARD_TRAITS = frozenset(os_traits.get_traits())


@dataclasses.dataclass(frozen=True)
class PciDeviceSpec:
    raw: str
    #: (domain, bus, slot, function) matchers: None (any) or a callable
    address: tuple
    vendor_id: str | None
    product_id: str | None
    physical_network: str | None
    resource_class: str | None
    traits: tuple

    def matches(self, device):
        if self.vendor_id and device.vendor_id != self.vendor_id:
            return False
        if self.product_id and device.product_id != self.product_id:
            return False
        domain, rest = device.address.split(":", 1)
        bus, rest = rest.split(":", 1)
        slot, function = rest.split(".")
        parts = (
            int(domain, 16),
            int(bus, 16),
            int(slot, 16),
            int(function, 16),
        )
        return all(
            m is None or m(v) for m, v in zip(self.address, parts, strict=True)
        )

    def class_for(self, device):
        return self.resource_class or (
            f"CUSTOM_PCI_{device.vendor_id}_{device.product_id}".upper()
        )


def _fail(raw, why, code="config.pci-device-spec-invalid"):
    return ConfigError(
        f"{OPTION} = {raw}: {why}", code=code, key=OPTION, value=raw
    )


def _glob(raw, text):
    """Matchers from a glob address such as 0000:3b:00.* or 3b:00.2.

    Nova's rules: the function follows the first '.', up to three ':'
    parts precede it, an empty part means any, and each part is ``*`` or
    hex no larger than the PCI limit (slot 1f, function 7).
    """
    slot_part, _, function = text.partition(".")
    fields = slot_part.split(":")
    if len(fields) > 3:
        raise _fail(
            raw,
            f"address {text!r} has too many ':' parts; write "
            "[[domain:]bus:]slot.function",
        )
    fields = ["*"] * (3 - len(fields)) + fields + [function]
    out = []
    for (name, largest, width), value in zip(_FIELDS, fields, strict=True):
        value = value.strip() or "*"
        if value == "*":
            out.append(None)
            continue
        if not _HEX.fullmatch(value) or int(value, 16) > largest:
            raise _fail(
                raw,
                f"address {text!r}: {name} {value!r} is not * or hex from "
                f"0 to {largest:0{width}x}",
            )
        out.append(lambda v, n=int(value, 16): v == n)
    return tuple(out)


def _regex(raw, parts):
    unknown = sorted(set(parts) - {f[0] for f in _FIELDS})
    if unknown:
        raise _fail(
            raw, f"address keys {unknown}; valid: domain, bus, slot, function"
        )
    out = []
    for name, _, width in _FIELDS:
        pattern = parts.get(name)
        if pattern is None:
            out.append(None)
            continue
        if not isinstance(pattern, str):
            raise _fail(
                raw,
                f"address {name} {pattern!r} must be a regular expression "
                "string",
            )
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise _fail(
                raw, f"address {name} regex {pattern!r}: {exc}"
            ) from None
        out.append(
            lambda v, c=compiled, w=width: bool(c.fullmatch(f"{v:0{w}x}"))
        )
    return tuple(out)


def _id(raw, key, value):
    if value is None or value == "*":
        return None
    if not isinstance(value, str):
        raise _fail(
            raw, f'{key} {value!r} must be a string such as "10de" or "*"'
        )
    text = value.strip().lower().removeprefix("0x")
    if not _HEX.fullmatch(text):
        raise _fail(raw, f"{key} {value!r} is not a 4-digit hex id or *")
    return text.zfill(4)


def _string(raw, data, key):
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(raw, f"{key} {value!r} must be a string")
    return value


def _boolean(raw, data, key):
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    from oslo_utils import strutils  # slow import: only here

    try:
        return strutils.bool_from_string(str(value), strict=True)
    except ValueError:
        raise _fail(
            raw, f"{key} {value!r} is not a boolean (true or false)"
        ) from None


def _resource_class(raw, data):
    rc = _string(raw, data, "resource_class")
    if rc is None or rc in STANDARD_CLASSES:
        return rc
    name = as_custom(rc)
    why = custom_class_problem(name)
    if why:
        raise _fail(raw, f"resource_class {rc!r}: {name!r} {why}")
    return name


def _traits(raw, data):
    traits = []
    # spaces around the commas are layout, not part of a name
    for t in (_string(raw, data, "traits") or "").split(","):
        t = t.strip()
        if not t:
            continue
        name = t if t in _STANDARD_TRAITS else as_custom(t)
        if not _TRAIT_RE.fullmatch(name) or len(name) > MAX_LENGTH:
            raise _fail(
                raw,
                f"trait {t!r} is not a valid trait name (letters, digits "
                f"and _, at most {MAX_LENGTH} characters)",
            )
        traits.append(name)
    return tuple(sorted(set(traits)))


def _one(raw, data):
    if not isinstance(data, dict):
        raise _fail(raw, "each spec is a JSON object")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise _fail(raw, f"unknown key(s) {unknown}; valid: {', '.join(KEYS)}")
    if "devname" in data:
        # Nova resolves a network interface name through the host's sysfs;
        # ignoring it here would make the spec match every device
        raise _fail(
            raw,
            f"devname {data['devname']!r} is not supported: name the "
            "device by address (e.g. 0000:3b:00.*) and vendor/product id",
            code="config.pci-device-spec-devname",
        )
    address = data.get("address", "*:*:*.*")
    if isinstance(address, dict):
        matchers = _regex(raw, address)
    elif isinstance(address, str):
        matchers = _glob(raw, address)
    else:
        raise _fail(raw, "address must be a glob string or an object")
    _boolean(raw, data, "managed")
    _boolean(raw, data, "remote_managed")
    return PciDeviceSpec(
        raw,
        matchers,
        _id(raw, "vendor_id", data.get("vendor_id")),
        _id(raw, "product_id", data.get("product_id")),
        _string(raw, data, "physical_network"),
        _resource_class(raw, data),
        _traits(raw, data),
    )


def parse_device_specs(values):
    specs = []
    for raw in values:
        try:
            data = jsonvalue.loads(raw)
        except ValueError as exc:
            raise _fail(raw, f"not JSON ({exc})") from None
        for item in data if isinstance(data, list) else [data]:
            specs.append(_one(raw, item))
    return tuple(specs)


def assignable(specs, devices):
    """(device, spec) for every host device the first matching spec allows.

    Nova's rule: the first spec that matches a device decides for it.
    """
    out = []
    for device in devices.pci:
        for spec in specs:
            if spec.matches(device):
                out.append((device, spec))
                break
    return tuple(out)
