"""Guest NUMA cells: how many, which vCPUs and MB each, and explicit pins.

Nova builds a guest NUMA topology when the guest asks for one
(``hw:numa_nodes``), pins CPUs, or uses huge pages; we add explicit
host-cell pins (``hw:numa_node.N=HOSTCELL``), which also imply one.  The
cells are symmetric unless ``hw:numa_cpus.N``/``hw:numa_mem.N`` give them
explicitly, in which case every cell must be given and every vCPU and MB
accounted for exactly once.
"""

from nova_slices.cpuset import parse_cpuset
from nova_slices.request.model import GuestCell
from nova_slices.request.specs import as_int, fail


def node_count(specs):
    """(count or None, the key that gave it)."""
    flavor, image = specs.get("numa_nodes")
    if flavor and image:
        raise fail(
            "image-numa-forbidden",
            "hw_numa_nodes",
            image,
            "the flavor sets hw:numa_nodes; an image may not set it too",
        )
    key, value = (
        ("hw:numa_nodes", flavor) if flavor else ("hw_numa_nodes", image)
    )
    if value is None or value == "":
        return None, key
    count = as_int(
        key,
        value,
        1,
        "numa-nodes-invalid",
        "a whole number of guest NUMA cells",
    )
    return count, key


def _map(specs, name, parse):
    """The flavor's or the image's per-cell map, never both.

    Returns (map, key prefix such as "hw:numa_cpus" or "hw_numa_cpus").
    """
    flavor = specs.indexed(name, "f")
    image = specs.indexed(name, "i")
    if flavor and image:
        key = f"hw_{name}.{min(image)}"
        raise fail(
            "image-numa-forbidden",
            key,
            image[min(image)],
            f"the flavor sets hw:{name}.N; an image may not set it too",
        )
    source, values = ("hw_", image) if image else ("hw:", flavor)
    parsed = {n: parse(f"{source}{name}.{n}", v) for n, v in values.items()}
    return parsed, f"{source}{name}"


def _cpus(key, value):
    try:
        return frozenset(parse_cpuset(str(value)))
    except ValueError as exc:
        raise fail(
            "numa-cpus-invalid",
            key,
            value,
            f"{exc}; write guest vCPUs such as 0-1,4",
        ) from None


def _mem(key, value):
    return as_int(key, value, 1, "numa-mem-invalid", "a whole number of MB")


def _pins(specs):
    def read(source, prefix):
        return {
            n: as_int(
                f"{prefix}.{n}",
                v,
                0,
                "numa-node-invalid",
                "a host NUMA cell id (a non-negative integer)",
            )
            for n, v in specs.indexed("numa_node", source).items()
        }

    flavor, image = read("f", "hw:numa_node"), read("i", "hw_numa_node")
    if flavor:
        for n, host in image.items():
            if flavor.get(n) != host:
                raise fail(
                    "image-numa-node-forbidden",
                    f"hw_numa_node.{n}",
                    host,
                    "the flavor pins guest cells with hw:numa_node.N; an "
                    "image may only repeat those pins",
                )
        return flavor, "hw:numa_node"
    return image, "hw_numa_node"


def guest_cells(specs, vcpus, memory_mb, dedicated, implied, nodes):
    """The guest cells, or () when the guest has no NUMA topology.

    ``nodes`` is :func:`node_count`'s answer, read first as Nova does.
    """
    nodes, nodes_key = nodes
    pins, pin_key = _pins(specs)
    cpu_map, cpu_key = _map(specs, "numa_cpus", _cpus)
    mem_map, mem_key = _map(specs, "numa_mem", _mem)
    # name a missing map after the source (flavor or image) of the other
    if mem_map and not cpu_map:
        cpu_key = mem_key[:3] + cpu_key[3:]
    if cpu_map and not mem_map:
        mem_key = cpu_key[:3] + mem_key[3:]
    if not (nodes or implied or pins):
        if cpu_map or mem_map:
            key, index = (
                (cpu_key, min(cpu_map)) if cpu_map else (mem_key, min(mem_map))
            )
            raise fail(
                "numa-incomplete",
                f"{key}.{index}",
                (cpu_map or mem_map)[index],
                "hw:numa_cpus.N/hw:numa_mem.N need hw:numa_nodes",
            )
        return ()
    nodes = nodes or 1
    if cpu_map or mem_map:
        cells = _manual(
            nodes, vcpus, memory_mb, (cpu_map, cpu_key), (mem_map, mem_key)
        )
    else:
        cells = _auto(nodes, vcpus, memory_mb, nodes_key)
    for n, host in pins.items():
        if n >= nodes:
            raise fail(
                "numa-node-guest-cell",
                f"{pin_key}.{n}",
                host,
                f"the guest has {nodes} NUMA cell(s) (0-{nodes - 1}); set "
                "hw:numa_nodes to pin more",
            )
    taken = {}
    for n, host in sorted(pins.items()):
        if host in taken:
            raise fail(
                "numa-node-duplicate",
                f"{pin_key}.{n}",
                host,
                f"guest cell {taken[host]} is already pinned to host cell "
                f"{host}; each guest cell needs its own host cell",
            )
        taken[host] = n
    return tuple(
        GuestCell(i, cpus, mem, cpus & dedicated, pins.get(i))
        for i, (cpus, mem) in enumerate(cells)
    )


def _auto(nodes, vcpus, memory_mb, nodes_key):
    if vcpus % nodes or memory_mb % nodes:
        raise fail(
            "numa-asymmetric",
            nodes_key,
            nodes,
            f"{vcpus} vCPUs and {memory_mb} MB do not split evenly into "
            f"{nodes} cells; give hw:numa_cpus.N and hw:numa_mem.N for "
            "every cell",
        )
    per_cpu, per_mem = vcpus // nodes, memory_mb // nodes
    return [
        (frozenset(range(i * per_cpu, (i + 1) * per_cpu)), per_mem)
        for i in range(nodes)
    ]


def _manual(nodes, vcpus, memory_mb, cpus, mems):
    (cpu_map, cpu_key), (mem_map, mem_key) = cpus, mems
    for key, mapping in ((cpu_key, cpu_map), (mem_key, mem_map)):
        extra = sorted(n for n in mapping if n >= nodes)
        if extra:
            raise fail(
                "numa-index-out-of-range",
                f"{key}.{extra[0]}",
                mapping[extra[0]],
                f"the guest has {nodes} NUMA cell(s) (0-{nodes - 1})",
            )
        if len(mapping) != nodes:
            # every index is below ``nodes``, so one is missing; find the
            # first without walking ``nodes`` (which may be huge)
            missing = next(
                i for i in range(len(mapping) + 1) if i not in mapping
            )
            raise fail(
                "numa-incomplete",
                f"{key}.{missing}",
                None,
                f"with {nodes} cell(s), hw:numa_cpus.N and hw:numa_mem.N "
                f"must both be given for every cell 0-{nodes - 1}",
            )
    seen = set()
    for n in range(nodes):
        for cpu in sorted(cpu_map[n]):
            if cpu >= vcpus:
                raise fail(
                    "numa-cpus-out-of-range",
                    f"{cpu_key}.{n}",
                    cpu,
                    f"vCPU {cpu} does not exist; the flavor has vCPUs "
                    f"0-{vcpus - 1}",
                )
            if cpu in seen:
                raise fail(
                    "numa-cpus-duplicate",
                    f"{cpu_key}.{n}",
                    cpu,
                    f"vCPU {cpu} is already in another cell; each vCPU "
                    "belongs to exactly one cell",
                )
            seen.add(cpu)
    unassigned = sorted(set(range(vcpus)) - seen)
    if unassigned:
        raise fail(
            "numa-cpus-unassigned",
            cpu_key,
            unassigned,
            f"vCPU(s) {unassigned} are in no cell; every vCPU must be "
            "assigned",
        )
    total = sum(mem_map.values())
    if total != memory_mb:
        raise fail(
            "numa-mem-mismatch",
            mem_key,
            total,
            f"the cells add up to {total} MB but the flavor has "
            f"{memory_mb} MB",
        )
    return [(cpu_map[n], mem_map[n]) for n in range(nodes)]
