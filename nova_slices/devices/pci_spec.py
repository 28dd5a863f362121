"""``[pci] device_spec``: which PCI devices guests may be given, as what.

Nova's format, one JSON object per value (a list of objects is accepted
too): ``address`` as a glob (``[[domain:]bus:]slot.function``, any part
``*``) or an object of regular expressions per part, ``vendor_id`` and
``product_id`` (``*`` matches any), ``physical_network``,
``resource_class`` (default ``CUSTOM_PCI_<VENDOR>_<PRODUCT>``, as Nova's
PCI-in-Placement names it; other names are upper-cased and prefixed
``CUSTOM_`` unless standard) and ``traits`` (comma separated; non-standard
names likewise prefixed).  Every mistake names the option and the value.
"""

import dataclasses
import json
import re

import os_resource_classes as orc
import os_traits

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
_NAME_RE = re.compile(r"^[A-Z0-9_]+$")
_HEX = re.compile(r"^(\*|[0-9a-fA-F]{1,4})$")
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
    """Matchers from a glob address such as 0000:3b:00.* or 3b:00.2."""
    text = text.strip()
    slot_part, _, function = text.rpartition(".")
    if not _:
        slot_part, function = text, "*"
    fields = slot_part.split(":") if slot_part else ["*"]
    if len(fields) > 3:
        raise _fail(
            raw,
            f"address {text!r} has too many ':' parts; write "
            "[[domain:]bus:]slot.function",
        )
    fields = ["*"] * (3 - len(fields)) + fields
    out = []
    for name, value, width in zip(
        ("domain", "bus", "slot", "function"),
        fields + [function or "*"],
        (4, 2, 2, 1),
        strict=True,
    ):
        if not _HEX.match(value) or (value != "*" and len(value) > width):
            raise _fail(
                raw, f"address {text!r}: {name} {value!r} is not hex or *"
            )
        out.append(
            None if value == "*" else (lambda v, n=int(value, 16): v == n)
        )
    return tuple(out)


def _regex(raw, parts):
    out = []
    for name in ("domain", "bus", "slot", "function"):
        pattern = parts.get(name)
        if pattern is None:
            out.append(None)
            continue
        try:
            compiled = re.compile(str(pattern))
        except re.error as exc:
            raise _fail(
                raw, f"address {name} regex {pattern!r}: {exc}"
            ) from None
        width = {"domain": 4, "bus": 2, "slot": 2, "function": 1}[name]
        out.append(
            lambda v, c=compiled, w=width: bool(c.fullmatch(f"{v:0{w}x}"))
        )
    unknown = sorted(set(parts) - {"domain", "bus", "slot", "function"})
    if unknown:
        raise _fail(
            raw, f"address keys {unknown}; valid: domain, bus, slot, function"
        )
    return tuple(out)


def _id(raw, key, value):
    if value in (None, "*"):
        return None
    text = str(value).lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{1,4}", text):
        raise _fail(raw, f"{key} {value!r} is not a 4-digit hex id or *")
    return text.zfill(4)


def _custom(name):
    upper = name.strip().upper()
    return upper if upper.startswith("CUSTOM_") else "CUSTOM_" + upper


def _one(raw, data):
    if not isinstance(data, dict):
        raise _fail(raw, "each spec is a JSON object")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise _fail(raw, f"unknown key(s) {unknown}; valid: {', '.join(KEYS)}")
    address = data.get("address", "*:*:*.*")
    if isinstance(address, dict):
        matchers = _regex(raw, address)
    elif isinstance(address, str):
        matchers = _glob(raw, address)
    else:
        raise _fail(raw, "address must be a glob string or an object")
    rc = data.get("resource_class")
    if rc is not None:
        rc = rc if rc in orc.STANDARDS else _custom(str(rc))
        if not _NAME_RE.match(rc):
            raise _fail(
                raw,
                f"resource_class {data['resource_class']!r} "
                "is not a valid class name",
            )
    traits = []
    for t in str(data.get("traits", "")).split(","):
        if not t.strip():
            continue
        name = t.strip() if t.strip() in _STANDARD_TRAITS else _custom(t)
        if not _NAME_RE.match(name):
            raise _fail(raw, f"trait {t.strip()!r} is not a valid trait name")
        traits.append(name)
    return PciDeviceSpec(
        raw,
        matchers,
        _id(raw, "vendor_id", data.get("vendor_id")),
        _id(raw, "product_id", data.get("product_id")),
        data.get("physical_network"),
        rc,
        tuple(sorted(set(traits))),
    )


def parse_device_specs(values):
    specs = []
    for raw in values:
        try:
            data = json.loads(raw)
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
