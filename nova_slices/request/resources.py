"""Explicit ``resources*:RC`` and ``trait*:NAME`` extra specs.

Names come from os-resource-classes and os-traits (standard) or follow
the ``CUSTOM_`` rule; suffixes are Nova's granular group suffixes.
"""

import functools
import re

import os_resource_classes as orc

from nova_slices.request.specs import as_choice, as_int, fail

#: Nova's group suffix (nova/scheduler/utils.py XS_KEYPAT)
_SUFFIX = r"([a-zA-Z0-9_-]{1,64})?"
_RESOURCE_RE = re.compile(rf"^resources{_SUFFIX}:(.*)$")
_TRAIT_RE = re.compile(rf"^trait{_SUFFIX}:(.*)$")


@functools.cache
def _standard_traits():
    """os-traits' names, read once a trait is checked: importing os_traits
    walks its whole package (tens of ms of every ``request``/``fit``)."""
    import os_traits

    return frozenset(os_traits.get_traits())


_CUSTOM_RE = re.compile(r"^CUSTOM_[A-Z0-9_]+$")
TRAIT_VALUES = ("required", "forbidden")
GROUP_POLICIES = ("none", "isolate")


def _is_resource_class(name):
    return name in orc.STANDARDS or bool(_CUSTOM_RE.match(name))


def _is_trait(name):
    return name in _standard_traits() or bool(_CUSTOM_RE.match(name))


def resources_and_traits(specs):
    resources, traits = {}, {}
    for key, value in specs.flavor.items():
        match = _RESOURCE_RE.match(key)
        if match:
            specs.used.add(("f", key))
            suffix, rc = match.group(1) or "", match.group(2)
            if not _is_resource_class(rc):
                raise fail(
                    "resource-class-invalid",
                    key,
                    value,
                    f"{rc!r} is neither a standard resource class nor "
                    "CUSTOM_[A-Z0-9_]+",
                )
            resources[(suffix, rc)] = as_int(
                key, value, 0, "resources-invalid", "a non-negative integer"
            )
            continue
        match = _TRAIT_RE.match(key)
        if match:
            specs.used.add(("f", key))
            suffix, trait = match.group(1) or "", match.group(2)
            if not _is_trait(trait):
                raise fail(
                    "trait-invalid",
                    key,
                    value,
                    f"{trait!r} is neither a standard trait (os-traits) nor "
                    "CUSTOM_[A-Z0-9_]+",
                )
            if value not in TRAIT_VALUES:
                raise fail(
                    "trait-invalid",
                    key,
                    value,
                    "must be required or forbidden",
                )
            traits[(suffix, trait)] = value
    for key, value in specs.image.items():
        match = _TRAIT_RE.match(key)
        if match and not match.group(1):
            # Nova reads image ``trait:NAME=required`` into traits_required
            specs.used.add(("i", key))
            if not _is_trait(match.group(2)) or value != "required":
                raise fail(
                    "trait-invalid",
                    key,
                    value,
                    "an image may only require a standard or CUSTOM_ trait "
                    "(trait:NAME=required)",
                )
    return tuple(sorted(resources.items())), tuple(sorted(traits.items()))


def group_policy(specs):
    """``group_policy``: may two numbered groups share a provider?"""
    value = specs.flavor_only("group_policy")
    if value is None:
        return None
    return as_choice(
        "group_policy", value, GROUP_POLICIES, "group-policy-invalid"
    )
