"""PCI NUMA affinity policy and PCI aliases from the flavor."""

import re

from nova_slices.request.model import PciAlias
from nova_slices.request.specs import as_choice, fail

PCI_NUMA_POLICIES = ("required", "legacy", "preferred", "socket")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def pci_numa_policy(specs):
    flavor, image = specs.get("pci_numa_affinity_policy")
    if flavor and image and flavor != image:
        raise fail(
            "image-pci-policy-forbidden",
            "hw_pci_numa_affinity_policy",
            image,
            f"the flavor sets hw:pci_numa_affinity_policy={flavor}; "
            "an image may only repeat it",
        )
    for key, value in (
        ("hw:pci_numa_affinity_policy", flavor),
        ("hw_pci_numa_affinity_policy", image),
    ):
        if value is not None:
            as_choice(key, value, PCI_NUMA_POLICIES, "pci-numa-policy-invalid")
    return flavor or image


def pci_aliases(specs):
    """``pci_passthrough:alias`` = ``name:count[,name:count]...``."""
    key = "pci_passthrough:alias"
    text = specs.flavor_only(key)
    if text is None:
        return ()
    out = []
    for item in str(text).split(","):
        name, _, count = item.strip().partition(":")
        name, count = name.strip(), count.strip()
        if (
            not _ALIAS_RE.match(name)
            or not re.fullmatch(r"[0-9]+", count)
            or int(count) < 1
        ):
            raise fail(
                "pci-alias-invalid",
                key,
                text,
                f"{item.strip()!r} is not alias:count; write e.g. "
                "a1:2,a2:1 (nova-api requires the count)",
            )
        out.append(PciAlias(name, int(count)))
    return tuple(out)
