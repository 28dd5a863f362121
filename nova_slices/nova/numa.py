"""Nova's scheduler values in the core's terms (pure over Nova objects).

``NUMAFitFilter`` runs this project's fitter on what Nova's scheduler
holds for a host: ``HostState.numa_topology`` (an ``objects.NUMATopology``
with each cell's CPU sets, siblings, socket, memory, page pools and
usage) and ``HostState.pci_stats`` (pools of free PCI devices).  The
request comes from the flavor and image as the API received them, so
keys Nova's own NUMA code does not know (``hw:numa_node.N``) count.
"""

import functools

from nova_slices.cpuset import format_cpuset
from nova_slices.fit.model import CellUsage, Limits, Usage
from nova_slices.fit.pci import PciRequest
from nova_slices.host.devices import HostDevices, PciDevice
from nova_slices.host.restrictions import HostRestrictions
from nova_slices.host.topology import Cell, Cpu, HostTopology, PagePool
from nova_slices.request.build import build_request


def host_model(numa_topology):
    """(HostTopology, Usage, HostRestrictions) of a NUMATopology.

    A cell whose shared and dedicated sets are the same CPUs is a host
    with neither ``cpu_*_set`` configured (every CPU serves both); else
    the sets are the host's ``cpu_shared_set``/``cpu_dedicated_set``.
    """
    cells, usage, reserved = [], [], []
    shared, dedicated, legacy = set(), set(), True
    # every field of a Nova object is read once: an attribute of a
    # versioned object costs ~1 us, and a host has hundreds of CPUs
    for nc in sorted(numa_topology.cells, key=lambda c: c.id):
        cell_id, socket = nc.id, nc.socket
        cpuset, pcpuset = frozenset(nc.cpuset), frozenset(nc.pcpuset)
        mempages = sorted(
            (p.size_kb, p.total, p.used, p.reserved) for p in nc.mempages or ()
        )
        siblings = frozenset(frozenset(g) for g in nc.siblings or ())
        cpus = _cell_cpus(socket, cpuset | pcpuset, siblings)
        pages = tuple(PagePool(size, total) for size, total, _, _ in mempages)
        cells.append(Cell(cell_id, cpus, nc.memory * 1024, pages, (), socket))
        used_pages = tuple(
            (size, used) for size, _, used, _ in mempages if used
        )
        reserved += [
            ((cell_id, size), held) for size, _, _, held in mempages if held
        ]
        cell_usage = CellUsage(
            frozenset(nc.pinned_cpus or ()),
            nc.cpu_usage or 0,
            nc.memory_usage or 0,
            used_pages,
        )
        if cell_usage != CellUsage():
            usage.append((cell_id, cell_usage))
        shared |= cpuset
        dedicated |= pcpuset
        legacy = legacy and cpuset == pcpuset
    restrictions = HostRestrictions(
        None if legacy else frozenset(dedicated),
        None if legacy else frozenset(shared),
        0,
        tuple(sorted(reserved)),
    )
    return HostTopology(tuple(cells)), Usage(tuple(usage)), restrictions


@functools.lru_cache(maxsize=1024)
def _cell_cpus(socket, ids, siblings):
    """The Cpus of one cell, by id.

    Cached: a scheduling request converts every host, a cloud has few
    shapes of cell, and building a few hundred Cpus per host was most of
    NUMAFitFilter's time.  Cpus are immutable, so sharing them is safe.
    """
    sibling_of = {cpu: group for group in siblings for cpu in group}
    return tuple(
        Cpu(i, socket, siblings=sibling_of.get(i) or frozenset({i}))
        for i in sorted(ids)
    )


def limits_of(numa_limits):
    """The core's Limits of Nova's ``NUMATopologyLimits`` (None: none).

    The host cell usage they are checked against is ``host_model``'s:
    Nova's own ``cpu_usage`` and ``memory_usage`` of each cell."""
    if numa_limits is None:
        return None
    return Limits(
        numa_limits.cpu_allocation_ratio, numa_limits.ram_allocation_ratio
    )


def _pool_addresses(index, pool):
    """Stand-in addresses for a pool's free devices: the scheduler's
    pools are counts with their tags, not devices."""
    return [f"pool-{index}/{n}" for n in range(pool.get("count", 0))]


def host_devices(pci_stats, topology):
    """The free PCI devices of ``PciDeviceStats`` pools, one stand-in per
    counted device, with the pool's NUMA node, ids and type."""
    out = []
    for index, pool in enumerate(getattr(pci_stats, "pools", None) or ()):
        node = pool.get("numa_node")
        for address in _pool_addresses(index, pool):
            out.append(
                PciDevice(
                    address,
                    pool.get("vendor_id"),
                    pool.get("product_id"),
                    numa_node=node,
                    socket=(
                        topology.socket_of_cell(node)
                        if node is not None
                        else None
                    ),
                    dev_type=pool.get("dev_type"),
                )
            )
    return HostDevices(tuple(out))


def pci_requests(instance_pci_requests, pci_stats, provider_mapping=None):
    """``InstancePCIRequests`` (flavor aliases and Neutron ports alike) as
    PciRequests over the devices of the pools Nova's own matching
    accepts: the spec (vendor, product, type and tags such as
    ``physical_network``) and, with PCI in Placement, the candidate's
    ``provider_mapping`` (None after the scheduler: each request carries
    its own).  The NUMA side is the fitter's.  (Nova 34's
    ``PciDeviceStats`` helpers; the ``[nova]`` extra pins the series.)"""
    requests = getattr(instance_pci_requests, "requests", None) or []
    pools = list(getattr(pci_stats, "pools", None) or ())
    out = []
    for r in requests:
        matching = pci_stats._filter_pools_for_spec(pools, r) if pools else []
        if matching:
            rp_uuids = pci_stats._get_rp_uuids_for_request(provider_mapping, r)
            matching = pci_stats._filter_pools_based_on_placement_allocation(
                matching, r, rp_uuids
            )
        addresses = frozenset(
            a
            for i, pool in enumerate(pools)
            if any(m is pool or m == pool for m in matching)
            for a in _pool_addresses(i, pool)
        )
        out.append(
            PciRequest(
                r.alias_name or r.request_id or "port",
                r.count,
                None,
                r.numa_policy or "legacy",
                addresses,
            )
        )
    return tuple(out)


def image_properties(image):
    """An image's ``hw_*`` properties as the API got them (strings)."""
    props = getattr(image, "properties", None)
    out = {}
    if props is None:
        return out
    for name in props.obj_fields:
        if not name.startswith("hw_") or not props.obj_attr_is_set(name):
            continue
        value = getattr(props, name)
        if name == "hw_numa_cpus":
            out.update(
                {f"{name}.{i}": format_cpuset(v) for i, v in enumerate(value)}
            )
        elif name == "hw_numa_mem":
            out.update({f"{name}.{i}": str(v) for i, v in enumerate(value)})
        elif isinstance(value, (set, frozenset)):
            out[name] = format_cpuset(value)
        elif isinstance(value, bool):
            out[name] = "yes" if value else "no"
        elif isinstance(value, (str, int)):
            out[name] = str(value)
    return out


@functools.lru_cache(maxsize=256)
def _guest_request(vcpus, memory_mb, extra_specs, image_props):
    return build_request(
        vcpus, memory_mb, dict(extra_specs), dict(image_props)
    )


def request_of(flavor, image_meta):
    """The core's GuestRequest of a Nova flavor and ImageMeta (a cache
    over their frozen items: equal flavors and images are parsed once;
    building the key still reads every image property, which is why
    ``NUMAFitFilter`` asks once per scheduling request, not per host).
    Raises NovaSlicesError on keys the core refuses."""
    return _guest_request(
        flavor.vcpus,
        flavor.memory_mb,
        frozenset((flavor.extra_specs or {}).items()),
        frozenset(image_properties(image_meta).items()),
    )
