"""Parse one ``[libvirt] slice_spec`` value into a :class:`SliceSpec`.

Operators write JSON objects, but the libvirt-slices spec's own example is
not JSON: ``{name="4_1", "resource_class":"CUSTOM_SLICE_4_GPU_V1",
template_file": "/etc/nova/x.xml", conflict_parent="8_1"}`` mixes
``key=value`` with ``"key": value`` and has a stray quote.  Refusing the
spec's own example would be hostile, so we accept that relaxed form with a
small tokenizer, and still refuse anything ambiguous with a message that
names the option, the value and the position.
"""

import dataclasses
import json
import os
import re

from nova_slices.conf import jsonvalue
from nova_slices.conf.names import custom_class_problem
from nova_slices.errors import ConfigError

OPTION = "[libvirt] slice_spec"
FIELDS = ("name", "resource_class", "template_file", "conflict_parent")
REQUIRED = ("name", "resource_class", "template_file")
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# key: an identifier with optional (possibly unbalanced) quotes around it;
# separator ``=`` or ``:``; value: a quoted string or a bare token.
_PAIR_RE = re.compile(
    r"""\s*["']?(?P<key>[A-Za-z_][A-Za-z0-9_]*)["']?\s*[=:]\s*
        (?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^,"'{}\s]+))
        \s*(?P<sep>,|$)""",
    re.VERBOSE,
)


@dataclasses.dataclass(frozen=True)
class SliceSpec:
    """One slice as the operator declared it (paths resolved)."""

    name: str
    resource_class: str
    template_file: str
    conflict_parent: str | None = None


def _error(raw, why, code="config.slice-spec-malformed", key=OPTION):
    return ConfigError(
        f"{key} = {raw!r}: {why}", code=code, key=key, value=raw
    )


def _parse_relaxed(raw, body):
    pairs = {}
    pos = 0
    while pos < len(body):
        match = _PAIR_RE.match(body, pos)
        if not match:
            raise _error(
                raw,
                f'cannot read a key=value or "key": value pair at '
                f"{body[pos : pos + 20]!r}; write a JSON object such as "
                '{"name": "1_1", "resource_class": "CUSTOM_SLICE_1_GPU_V1", '
                '"template_file": "slice_1_1.xml.j2"}',
            )
        key = match.group("key")
        value = next(
            v
            for v in (
                match.group("dq"),
                match.group("sq"),
                match.group("bare"),
            )
            if v is not None
        )
        if key in pairs:
            raise _error(raw, f"key {key!r} appears twice")
        pairs[key] = value
        pos = match.end()
        if match.group("sep") == "" and pos < len(body):
            raise _error(raw, f"expected ',' after {key!r}")
    return pairs


def parse_pairs(raw):
    """Return the key/value pairs of one slice_spec value."""
    text = raw.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise _error(raw, "a slice spec is an object in braces {...}")
    try:
        value = jsonvalue.loads(text)
    except ValueError:
        # not JSON, or JSON with a key twice, which the relaxed reader
        # refuses by name
        value = _parse_relaxed(raw, text[1:-1].strip())
    if not isinstance(value, dict):
        raise _error(raw, "a slice spec is an object in braces {...}")
    return value


def parse_slice_spec(raw, template_dir):
    """Parse and check one value; relative templates join ``template_dir``."""
    pairs = parse_pairs(raw)
    unknown = sorted(set(pairs) - set(FIELDS))
    if unknown:
        raise _error(
            raw,
            f"unknown key(s) {', '.join(unknown)}; valid keys are "
            f"{', '.join(FIELDS)}",
            code="config.slice-spec-unknown-key",
        )
    missing = [k for k in REQUIRED if not pairs.get(k)]
    if missing:
        raise _error(
            raw,
            f"missing required key(s) {', '.join(missing)}",
            code="config.slice-spec-missing-key",
        )
    for key, value in pairs.items():
        if value is not None and not isinstance(value, str):
            raise _error(
                raw, f"{key} must be a string, not {json.dumps(value)}"
            )
    name = pairs["name"]
    if not NAME_RE.fullmatch(name):
        raise _error(
            raw,
            f"name {name!r} must be 1-64 letters, digits, '_', '-' or '.'",
            code="config.slice-name-invalid",
        )
    rc = pairs["resource_class"]
    why = custom_class_problem(rc)
    if why:
        raise _error(
            raw,
            f"resource_class {rc!r} {why}: a slice is a custom Placement "
            "resource class",
            code="config.slice-resource-class-invalid",
        )
    template = pairs["template_file"]
    if not os.path.isabs(template):
        template = os.path.join(template_dir, template)
    parent = pairs.get("conflict_parent") or None
    return SliceSpec(name, rc, os.path.normpath(template), parent)
