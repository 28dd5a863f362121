"""Can a slice tree double-book the host?  The tests' own answer.

Written from the libvirt-slices spec's rule, not from the generator: two
slices that are not ancestor and descendant can run at once, so they must
not share a PCI device or a pinned pCPU, and neither's vCPUs may run on
the other's emulator CPUs; a child runs instead of its ancestors, so it
must be inside its parent (devices, pinned pCPUs, pages per host cell);
and the pages of slices that can run at once must fit the host's pools.

A slice is a dict: ``parent`` (name or None), ``pci``, ``pinned``,
``emulator`` (sets) and ``pages`` ({(host cell, page size KiB): count}).
"""

import itertools

from nova_slices.virt.holdings import domain_holdings


def from_domain(parent, domain):
    """A slice as its rendered domain element holds the host."""
    held = domain_holdings(domain)
    return {
        "parent": parent,
        "pci": set(held.pci),
        "pinned": set(held.pinned_cpus),
        "emulator": set(held.emulator_cpus),
        "pages": dict(held.pages),
    }


def _ancestors(slices, name):
    out, cur = [], slices[name]["parent"]
    while cur is not None:
        out.append(cur)
        cur = slices[cur]["parent"]
    return out


def problems(slices, pools=None):
    """Every way ``slices`` could double-book, as readable strings;
    ``pools``: {(cell, size KiB): pages} the host has for them."""
    out = []
    related = {n: set(_ancestors(slices, n)) for n in slices}
    for a, b in itertools.combinations(sorted(slices), 2):
        if a in related[b] or b in related[a]:
            continue
        sa, sb = slices[a], slices[b]
        for kind in ("pci", "pinned"):
            shared = sa[kind] & sb[kind]
            if shared:
                out.append(f"{a} and {b} share {kind} {sorted(shared)}")
        for x, y in ((sa, sb), (sb, sa)):
            if x["emulator"] & y["pinned"]:
                out.append(f"{a} and {b}: emulator CPUs under vCPUs")
    for name, s in slices.items():
        if s["emulator"] & s["pinned"] and s["emulator"] != s["pinned"]:
            out.append(f"{name}: emulator CPUs partly under its vCPUs")
        parent = s["parent"] and slices[s["parent"]]
        if not parent:
            continue
        for kind in ("pci", "pinned"):
            if not s[kind] <= parent[kind]:
                out.append(f"{name} {kind} not inside {s['parent']}")
        for key, count in s["pages"].items():
            if count > parent["pages"].get(key, 0):
                out.append(f"{name} pages {key} not inside {s['parent']}")
    if pools is not None:
        out += _page_problems(slices, pools)
    return out


def _page_problems(slices, pools):
    """The most pages slices that can run together take (an antichain of
    the tree: a slice, or the most its children take) must fit."""
    children = {n: [] for n in slices}
    for name, s in slices.items():
        if s["parent"] is not None:
            children[s["parent"]].append(name)

    def peak(name, key):
        own = slices[name]["pages"].get(key, 0)
        return max(own, sum(peak(c, key) for c in children[name]))

    keys = {k for s in slices.values() for k in s["pages"]}
    roots = [n for n, s in slices.items() if s["parent"] is None]
    out = []
    for key in sorted(keys):
        count = sum(peak(r, key) for r in roots)
        if count > pools.get(key, 0):
            out.append(
                f"slices running together take {count} pages of {key}, "
                f"the pool has {pools.get(key, 0)}"
            )
    return out
