"""Reading flavor extra specs and image properties, with typed errors.

A flavor key ``hw:foo`` has the image twin ``hw_foo``; indexed families
(``hw:numa_cpus.N`` / ``hw_numa_cpus.N``) are read as {N: value}.  Every
error names the key, the value and what would be valid, with a stable
code; nothing here decides precedence (the callers do, with Nova's rules).
"""

import re

from nova_slices.cpuset import parse_cpuset
from nova_slices.errors import RequestError

#: oslo_utils.strutils' boolean spellings, as Nova reads them.  Copied,
#: not imported: strutils compiles some 400 regular expressions at import
#: (a tenth of a second of every ``request`` and ``fit``).
_TRUE_STRINGS = ("1", "t", "true", "on", "y", "yes")
_FALSE_STRINGS = ("0", "f", "false", "off", "n", "no")


def _is_int_like(val):
    """``oslo_utils.strutils.is_int_like``: a base-10 integer as written."""
    try:
        return str(int(val)) == str(val)
    except (TypeError, ValueError):
        return False


#: Nova's limit on guest NUMA nodes (ImageMetaProps.NUMA_NODES_MAX)
NUMA_NODES_MAX = 128
_DIGITS = re.compile(r"[0-9]+")


def fail(code, key, value, message):
    if not key:
        text = message
    elif value is None:
        text = f"{key}: {message}"
    else:
        text = f"{key}={value!r}: {message}"
    return RequestError(
        text,
        code=f"request.{code}",
        key=key,
        value=value,
    )


def flavor_key(name):
    return f"hw:{name}"


def image_key(name):
    return f"hw_{name}"


class Specs:
    """Flavor extra specs plus image properties, tracking what was read."""

    def __init__(self, extra_specs, image_props):
        self.flavor = dict(extra_specs or {})
        self.image = dict(image_props or {})
        self.used = set()

    def get(self, name):
        """(flavor value, image value) of ``hw:name``/``hw_name``."""
        fk, ik = flavor_key(name), image_key(name)
        self.used.update((("f", fk), ("i", ik)))
        return self.flavor.get(fk), self.image.get(ik)

    def flavor_only(self, key):
        self.used.add(("f", key))
        return self.flavor.get(key)

    def indexed(self, name, source):
        """{N: value} for ``hw:name.N`` (source "f") or ``hw_name.N``."""
        if source == "f":
            prefix, specs = flavor_key(name) + ".", self.flavor
        else:
            prefix, specs = image_key(name) + ".", self.image
        out = {}
        for key, value in specs.items():
            if not key.startswith(prefix):
                continue
            self.used.add((source, key))
            index = key[len(prefix) :]
            if not _DIGITS.fullmatch(index) or int(index) >= NUMA_NODES_MAX:
                raise fail(
                    "numa-index-invalid",
                    key,
                    value,
                    f"the guest cell index {index!r} must be an integer "
                    f"from 0 to {NUMA_NODES_MAX - 1}",
                )
            out[int(index)] = value
        return out

    def unused(self):
        keys = [k for k in self.flavor if ("f", k) not in self.used]
        keys += [k for k in self.image if ("i", k) not in self.used]
        return tuple(sorted(keys))


def as_int(key, value, minimum=None, code="int-invalid", what="an integer"):
    """An integer written as Nova's ``is_int_like`` wants it: "2", "-1";
    not "+2", " 2", "02" or other scripts' digits."""
    text = str(value)
    if (
        isinstance(value, bool)
        or not _is_int_like(text)
        or not _DIGITS.fullmatch(text.lstrip("-"))
    ):
        raise fail(code, key, value, f"must be {what}")
    number = int(text)
    if minimum is not None and number < minimum:
        raise fail(code, key, value, f"must be {what} of at least {minimum}")
    return number


def as_bool(key, value, code):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE_STRINGS:
        return True
    if text in _FALSE_STRINGS:
        return False
    raise fail(
        code, key, value, "must be a boolean (true/false, yes/no, 1/0, on/off)"
    )


def as_choice(key, value, choices, code):
    if value not in choices:
        raise fail(code, key, value, f"must be one of {', '.join(choices)}")
    return value


def as_mask(key, value, vcpus, code):
    """A vCPU mask; a leading ``^`` means "all vCPUs except"."""
    text = str(value).strip()
    if text.startswith("^"):
        text = f"0-{vcpus - 1},{text}"
    try:
        return frozenset(parse_cpuset(text))
    except ValueError as exc:
        raise fail(
            code, key, value, f"{exc}; write a vCPU set such as 0-1,4 or ^0"
        ) from None
