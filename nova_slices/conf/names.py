"""Placement's rules for the resource class names configuration gives it.

Placement refuses a custom class that is not ``CUSTOM_[A-Z0-9_]+`` or is
longer than 255 characters, but only when the host first reports it,
long after start-up.  The options that name classes (``[libvirt]
slice_spec``, ``[pci] device_spec``, ``[mdev_<type>] mdev_class``) check
them here instead, with Placement's rule and os-resource-classes' list of
standard names, so that a stray character (a trailing newline from a
continuation line or a JSON escape) is refused where it was written.
"""

import re

import os_resource_classes as orc

#: Placement's schema limit for resource class names
MAX_LENGTH = 255
STANDARD_CLASSES = frozenset(orc.STANDARDS)
CUSTOM_PATTERN = "CUSTOM_[A-Z0-9_]+"
_CUSTOM_RE = re.compile(CUSTOM_PATTERN)


def custom_class_problem(name):
    """Why Placement would refuse ``name`` as a custom class, or None."""
    if not isinstance(name, str):
        return f"is not a string but {type(name).__name__}"
    if len(name) > MAX_LENGTH:
        return (
            f"is {len(name)} characters long; Placement allows at most "
            f"{MAX_LENGTH}"
        )
    # fullmatch: ``$`` would let a trailing newline through
    if not _CUSTOM_RE.fullmatch(name):
        return (
            f"must match {CUSTOM_PATTERN} (upper-case letters, digits and _ "
            "after CUSTOM_)"
        )
    return None


def as_custom(name):
    """``name`` with the CUSTOM_ prefix, upper-cased (gpu -> CUSTOM_GPU).

    Nothing else is changed: whitespace stays, so that the check refuses
    it rather than a guess quietly dropping it.
    """
    upper = name.upper()
    if upper.startswith(orc.CUSTOM_NAMESPACE):
        return upper
    return orc.CUSTOM_NAMESPACE + upper
