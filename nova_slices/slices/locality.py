"""How near a device is to a slice, and which devices a slice may take (pure).

A slice's template fixes where its guest runs: the host cells of the CPUs
its vCPUs are pinned to and of the memory ``<numatune>`` binds it to.  A
device asked for next to the slice (a VF, a vGPU: ``resources_NIC:...``)
comes from a Placement allocation candidate, and Placement knows nothing
of NUMA; so the claim ranks the candidates: a device on one of the slice's
cells first, then one on the socket of those cells, then any other.  With
``hw:pci_numa_affinity_policy`` on the flavor the ranking becomes a rule,
with Nova's meaning of each policy (:func:`nova_slices.fit.pci.qualifies`):
``required`` takes only devices on the slice's cells, ``legacy`` those or
devices without NUMA information, ``socket`` devices on the slice's
socket (only on its cells when any host cell's socket is unknown, as in
Nova), ``preferred`` ranks only.  Without a policy devices are ranked, as
Nova gives devices of ``resources*`` groups no NUMA affinity at all.
"""

import dataclasses

from nova_slices.cpuset import parse_cpuset
from nova_slices.errors import NoCandidates
from nova_slices.fit.pci import policy_sockets, qualifies
from nova_slices.virt.holdings import domain_holdings

CELL, SOCKET, ELSEWHERE = "cell", "socket", "elsewhere"
#: how much a device on each tier counts, per unit allocated
_SCORE = {CELL: 2, SOCKET: 1, ELSEWHERE: 0}
POLICY_KEY = "hw:pci_numa_affinity_policy"


@dataclasses.dataclass(frozen=True)
class SliceLocality:
    """The host cells a slice's guest runs on, and their sockets."""

    cells: frozenset
    #: the cells' sockets; None when the host's socket data is partial
    #: (some cell has no socket): then no device counts as "on the
    #: slice's socket", as Nova's socket policy decides for such hosts
    sockets: frozenset | None


def _nodes(text):
    try:
        return frozenset(parse_cpuset(text or ""))
    except ValueError:
        return frozenset()  # the host check reports a malformed set


def slice_locality(domain, topology):
    """SliceLocality of a slice's rendered domain element on ``topology``.

    Its cells are those of its pinned vCPUs and those its memory is bound
    to (``<numatune><memory>``/``<memnode>`` nodesets): the device's DMA
    goes to the guest's memory as much as its interrupts to its CPUs.
    Cells the host does not have are left out (the template check refuses
    them).
    """
    cells = set()
    for cpu in domain_holdings(domain).pinned_cpus:
        cell = topology.cell_of_cpu(cpu)
        if cell is not None:
            cells.add(cell.id)
    for el in domain.iterfind("numatune/memory"):
        cells |= _nodes(el.get("nodeset"))
    for el in domain.iterfind("numatune/memnode"):
        cells |= _nodes(el.get("nodeset"))
    return of_cells(
        (c for c in cells if topology.cell(c) is not None), topology
    )


def of_cells(cells, topology):
    """SliceLocality of a guest on host ``cells`` (a slice's, or a
    dynamic guest's as the fitter placed it)."""
    cells = frozenset(cells)
    return SliceLocality(cells, policy_sockets(topology, cells))


@dataclasses.dataclass(frozen=True)
class DeviceSite:
    """Where a device provider's device is (duck-typed as a PciDevice
    for :func:`nova_slices.fit.pci.qualifies`)."""

    #: the device the provider stands for: a standalone device, the PF of
    #: a VF inventory, the parent of an mdev type
    address: str
    numa_node: int | None
    socket: int | None


def tier(where, site):
    """CELL, SOCKET or ELSEWHERE: where ``site`` (a DeviceSite) is
    relative to ``where`` (a SliceLocality)."""
    if site.numa_node is not None and site.numa_node in where.cells:
        return CELL
    if (
        where.sockets is not None
        and site.socket is not None
        and site.socket in where.sockets
    ):
        return SOCKET
    return ELSEWHERE


def nearness(where, sites):
    """{provider: score} of the device ``sites`` near ``where`` (cell 2,
    socket 1; others left out): what a dynamic guest's claim prefers."""
    out = {}
    for rp, site in sites.items():
        score = _SCORE[tier(where, site)]
        if score:
            out[rp] = score
    return out


def _cells(ids, word="cell"):
    ids = sorted(ids)
    return f"{word}{'s' if len(ids) != 1 else ''} " + ", ".join(map(str, ids))


@dataclasses.dataclass(frozen=True)
class DeviceLocality:
    """The rule one spawn's device choice follows.

    ``slices`` maps slice names to their SliceLocality, ``sites`` device
    provider uuids to their DeviceSite; ``policy`` is the flavor's
    ``hw:pci_numa_affinity_policy`` (None: rank only).
    """

    slices: dict
    sites: dict
    cells_without_socket: tuple = ()
    policy: str | None = None

    def tier(self, slice_name, rp):
        return tier(self.slices[slice_name], self.sites[rp])

    def allows(self, slice_name, rp):
        """Whether the policy lets the slice's guest have ``rp``'s device."""
        if self.policy in (None, "preferred"):
            return True
        where = self.slices[slice_name]
        return qualifies(
            self.sites[rp], self.policy, where.cells, where.sockets
        )

    def score(self, slice_name, allocations):
        """How near a candidate's devices are to its slice (higher is
        nearer), or None when the policy refuses one of them."""
        total = 0
        for rp, resources in allocations.items():
            if rp not in self.sites:
                continue
            if not self.allows(slice_name, rp):
                return None
            total += _SCORE[self.tier(slice_name, rp)] * sum(
                resources.values()
            )
        return total

    def explain(self, slice_name, chosen, offered):
        """Why each device of ``chosen`` (the allocations taken) was taken,
        given ``offered``: every candidate allocation Placement offered
        with this slice.  The ``device_locality`` of spawn's output."""
        where = self.slices[slice_name]
        best = {}
        for allocations in offered:
            for rp, resources in allocations.items():
                if rp in self.sites and self.allows(slice_name, rp):
                    rank = _SCORE[self.tier(slice_name, rp)]
                    for rc in resources:
                        best[rc] = max(best.get(rc, 0), rank)
        devices = []
        for rp, resources in sorted(chosen.items()):
            site = self.sites.get(rp)
            if site is None:
                continue
            tier = self.tier(slice_name, rp)
            for rc, amount in sorted(resources.items()):
                devices.append(
                    {
                        "resource_class": rc,
                        "amount": amount,
                        "device": site.address,
                        "provider": rp,
                        "numa_node": site.numa_node,
                        "socket": site.socket,
                        "locality": tier,
                        "reason": self._reason(
                            where, site, tier, best.get(rc, 0)
                        ),
                    }
                )
        return {
            "slice_cells": sorted(where.cells),
            "slice_sockets": (
                None if where.sockets is None else sorted(where.sockets)
            ),
            "policy": self.policy,
            "devices": devices,
        }

    def _reason(self, where, site, tier, best):
        if not where.cells:
            return (
                "elsewhere: the slice's template pins no vCPU and binds no "
                "memory to a host cell, so no device is near it"
            )
        if tier == CELL:
            return f"on the slice's cell {site.numa_node}"
        if best > _SCORE[tier]:
            nearer = "cell" if best == _SCORE[CELL] else "socket"
            why = (
                f"a device on its {nearer} was free, but not together with "
                "the rest of the request"
            )
        elif tier == SOCKET:
            why = f"none free on {_cells(where.cells)}"
        elif where.sockets is None:
            why = (
                f"none free on {_cells(where.cells)}, and the host's socket "
                f"data is partial ({_cells(self.cells_without_socket)} "
                "without a socket)"
            )
        else:
            why = f"none free on {_cells(where.sockets, 'socket')}"
        if tier == SOCKET:
            return f"on its socket {site.socket}, {why}"
        if site.numa_node is None:
            return f"elsewhere (NUMA node unknown): {why}"
        return f"elsewhere: {why}"

    def refusal(self, resource_class, refused):
        """NoCandidates for a request whose every candidate the policy
        refused; ``refused`` holds (slice name, allocations) pairs."""
        slices = sorted({name for name, _ in refused})
        offered = {}
        for _, allocations in refused:
            for rp, resources in allocations.items():
                site = self.sites.get(rp)
                if site is None:
                    continue
                for rc in resources:
                    offered.setdefault(rc, set()).add(site.numa_node)
        free = "; ".join(
            f"{rc} free on "
            + " and ".join(
                ([_cells(nodes - {None})] if nodes - {None} else [])
                + (["devices of unknown NUMA node"] if None in nodes else [])
            )
            for rc, nodes in sorted(offered.items())
        )
        where = ", ".join(
            f"{name} ({_cells(self.slices[name].cells)})" for name in slices
        )
        if self.policy == "socket" and self.cells_without_socket:
            code = "pci.socket-unknown"
            unknown = self.cells_without_socket
            rule = (
                f"host {_cells(unknown)} "
                f"{'has' if len(unknown) == 1 else 'have'} no socket, so, "
                "as in Nova, the socket policy takes only devices on the "
                "slice's own cells"
            )
        elif self.policy == "socket":
            code = "pci.no-device-on-socket"
            rule = "the devices must be on the socket of the slice's cells"
        else:
            code = "pci.no-device-on-cell"
            rule = "the devices must be on one of the slice's cells" + (
                " (or have no NUMA node)" if self.policy == "legacy" else ""
            )
        return NoCandidates(
            f"{POLICY_KEY}={self.policy}: no free {resource_class} slice "
            f"has the devices asked for near it: {rule}; free slices: "
            f"{where}; {free}",
            code=code,
            key=POLICY_KEY,
            value=self.policy,
        )


def with_bound(explained, bound):
    """``explained`` (DeviceLocality.explain) with each device's
    ``bound`` PCI addresses or mdev uuids, from ``bound`` ({provider:
    [...]}, DeviceManager.bound_by_provider)."""
    return {
        **explained,
        "devices": [
            {**d, "bound": list(bound.get(d["provider"], ()))}
            for d in explained["devices"]
        ],
    }
