"""PCI requests and their NUMA affinity, as constraints on host cells.

A request (from ``pci_passthrough:alias`` through ``[pci] alias``) wants
``count`` devices matching the alias.  Which devices qualify depends on
the host cells the guest ends up on, by policy:

``required``  the device's cell is one of the guest's host cells;
``legacy``    as required, or the device has no NUMA information;
``socket``    the device's socket is the socket of one of the guest's
              host cells (a device with unknown socket never qualifies);
              on a host where any cell's socket is unknown, as in Nova,
              only devices on the guest's own cells (:func:`policy_sockets`);
``preferred`` any device, those on the guest's cells first.

Given a set of host cells, :func:`choose_devices` answers whether every
request can get distinct devices, and which ones: a small bipartite
matching.  The check is monotone in the set of cells, which the search
uses to prune.
"""

import dataclasses
import re

from nova_slices.conf import jsonvalue
from nova_slices.errors import ConfigError, RequestError
from nova_slices.host.devices import TYPE_PCI, TYPE_PF, TYPE_VF

POLICIES = ("required", "legacy", "preferred", "socket")
ALIAS_OPTION = "[pci] alias"
#: Nova's: vDPA devices cannot be requested through an alias
ALIAS_DEVICE_TYPES = (TYPE_PCI, TYPE_PF, TYPE_VF)
_ALIAS_KEYS = ("name", "vendor_id", "product_id", "device_type", "numa_policy")
_ALIAS_ID = re.compile(r"[0-9a-fA-F]{4}")


@dataclasses.dataclass(frozen=True)
class PciAliasSpec:
    name: str
    vendor_id: str | None
    product_id: str | None
    device_type: str | None
    numa_policy: str | None


@dataclasses.dataclass(frozen=True)
class PciRequest:
    alias: str
    count: int
    spec: PciAliasSpec | None
    policy: str
    #: when set, exactly these device addresses match (someone else --
    #: Nova's PCI stats -- already matched the request's spec and tags)
    addresses: frozenset | None = None

    def matches(self, device):
        if self.addresses is not None:
            return device.address in self.addresses
        s = self.spec
        return (
            (s.vendor_id is None or device.vendor_id == s.vendor_id)
            and (s.product_id is None or device.product_id == s.product_id)
            and (s.device_type is None or device.dev_type == s.device_type)
        )


def _alias_error(raw, why):
    return ConfigError(
        f"{ALIAS_OPTION} = {raw!r}: {why}",
        code="config.pci-alias-invalid",
        key=ALIAS_OPTION,
        value=raw,
    )


def _alias(raw, data):
    """One alias object, checked as Nova's schema (nova/pci/request.py)."""
    if not isinstance(data, dict):
        raise _alias_error(raw, "an alias is a JSON object with a name")
    unknown = sorted(set(data) - set(_ALIAS_KEYS))
    if unknown:
        raise _alias_error(
            raw, f"unknown key(s) {unknown}; valid: {', '.join(_ALIAS_KEYS)}"
        )
    for key, value in data.items():
        if not isinstance(value, str):
            raise _alias_error(raw, f"{key} {value!r} must be a string")
    name = data.get("name", "").strip()
    if not 1 <= len(name) <= 256:
        raise _alias_error(raw, "name must be 1 to 256 characters")
    missing = [k for k in ("vendor_id", "product_id") if k not in data]
    if missing:
        # Nova refuses it too (nova/pci/request.py, _validate_required_ids)
        raise _alias_error(
            raw,
            f"{' and '.join(missing)} missing: an alias names a device by "
            "vendor_id and product_id",
        )
    for key in ("vendor_id", "product_id"):
        if not _ALIAS_ID.fullmatch(data[key]):
            raise _alias_error(
                raw, f"{key} {data[key]!r} must be 4 hex digits, e.g. 10de"
            )
    for key, valid in (
        ("device_type", ALIAS_DEVICE_TYPES),
        ("numa_policy", POLICIES),
    ):
        if key in data and data[key] not in valid:
            raise _alias_error(
                raw, f"{key} {data[key]!r} must be one of {', '.join(valid)}"
            )
    return PciAliasSpec(
        name,
        _hex(data.get("vendor_id")),
        _hex(data.get("product_id")),
        data.get("device_type"),
        data.get("numa_policy"),
    )


def parse_aliases(values):
    """``[pci] alias`` values -> {name: PciAliasSpec}."""
    out = {}
    for raw in values:
        try:
            data = jsonvalue.loads(raw)
        except ValueError as exc:
            raise _alias_error(raw, f"not JSON ({exc})") from None
        spec = _alias(raw, data)
        if spec.name in out and out[spec.name] != spec:
            raise _alias_error(
                raw, f"alias {spec.name!r} is defined twice, differently"
            )
        out[spec.name] = spec
    return out


def _hex(value):
    return None if value is None else value.lower()


def build_requests(request, aliases):
    """The guest's PciRequests; its PCI policy overrides the alias's."""
    out = []
    for alias in request.pci_aliases:
        spec = aliases.get(alias.name)
        if spec is None:
            raise RequestError(
                f"pci_passthrough:alias names {alias.name!r}, which no "
                f"[pci] alias defines; defined: {', '.join(sorted(aliases))}"
                " or none",
                code="request.pci-alias-unknown",
                key="pci_passthrough:alias",
                value=alias.name,
            )
        policy = (
            request.pci_numa_affinity_policy or spec.numa_policy or "legacy"
        )
        out.append(PciRequest(alias.name, alias.count, spec, policy))
    return tuple(out)


def available_devices(devices, in_use):
    """Devices free to assign: not in use, nor tied to one that is.

    A PF whose VF is in use cannot be given away whole, and neither can a
    VF whose PF is.
    """
    by_address = devices.by_address()
    busy = set(in_use)
    for address in in_use:
        d = by_address.get(address)
        if d is None:
            continue
        if d.dev_type == TYPE_VF and d.parent_address:
            busy.add(d.parent_address)
        if d.dev_type == TYPE_PF:
            busy.update(d.vf_addresses)
    return tuple(d for d in devices.pci if d.address not in busy)


def policy_sockets(topology, cells):
    """The sockets a ``socket``-policy device may be on for a guest on
    host ``cells``; None when the host's socket data is partial.

    Nova 34 (``PciDeviceStats._filter_pools``) takes the devices on the
    guest's own cells first and widens to their sockets only when every
    host cell has a socket; with any cell lacking one
    (``_filter_pools_for_socket_affinity``: CPUs without socket ids, or a
    cell spanning sockets) the widening finds nothing.  So on such a host
    ``socket`` is ``required``, whichever cell lacks the socket: the host
    is one Nova "explicitly chose not to support".
    """
    if topology.cells_without_socket:
        return None
    return frozenset(topology.socket_of_cell(c) for c in cells)


def qualifies(device, policy, cells, sockets):
    """Does ``device`` serve ``policy`` for a guest on host ``cells``?
    ``sockets`` is :func:`policy_sockets` of those cells."""
    if policy == "required":
        return device.numa_node in cells
    if policy == "legacy":
        return device.numa_node is None or device.numa_node in cells
    if policy == "socket":
        if sockets is None:
            return device.numa_node in cells
        return device.socket is not None and device.socket in sockets
    return True


def choose_devices(requests, devices, cells, topology, strict=True, numa=True):
    """Addresses for every request given host ``cells``, or None.

    ``strict`` applies ``preferred`` as ``required`` (the first try); when
    not strict, ``preferred`` slots take local devices as far as possible
    and remote ones for the rest.  ``numa=False`` (a guest without NUMA
    cells) ignores affinity, as Nova does.
    """
    sockets = policy_sockets(topology, cells)
    must, local, anywhere = [], [], []
    for r in requests:
        matching = [d for d in devices if r.matches(d)]
        if not numa:
            must.extend([[d.address for d in matching]] * r.count)
            continue
        policy = "required" if r.policy == "preferred" else r.policy
        near = [
            d.address for d in matching if qualifies(d, policy, cells, sockets)
        ]
        if r.policy != "preferred" or strict:
            must.extend([near] * r.count)
        else:
            local.extend([near] * r.count)
            anywhere.extend([[d.address for d in matching]] * r.count)
    slots = must + local
    owner = {}

    def augment(slot, seen, options):
        for address in options[slot]:
            if address in seen:
                continue
            seen.add(address)
            if address not in owner or augment(owner[address], seen, options):
                owner[address] = slot
                return True
        return False

    for slot in range(len(must)):
        if not augment(slot, set(), slots):
            return None
    # preferred slots: as many local devices as a maximum matching allows
    # (augmenting never unmatches a slot), then anything for the rest
    unplaced = [
        s for s in range(len(must), len(slots)) if not augment(s, set(), slots)
    ]
    if unplaced:
        wider = must + anywhere
        for slot in unplaced:
            if not augment(slot, set(), wider):
                return None
    return tuple(sorted(owner, key=lambda a: owner[a]))


def pci_choice(requests, devices, cells, topology, numa=True):
    """Devices for the guest on ``cells``: honour ``preferred`` if we can."""
    if not requests:
        return ()
    if not numa:
        return choose_devices(requests, devices, cells, topology, numa=False)
    chosen = choose_devices(requests, devices, cells, topology, strict=True)
    if chosen is None and any(r.policy == "preferred" for r in requests):
        chosen = choose_devices(
            requests, devices, cells, topology, strict=False
        )
    return chosen
