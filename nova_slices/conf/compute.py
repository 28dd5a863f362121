"""Nova's host-restriction options, with Nova's names, groups and formats.

``cpu_dedicated_set``/``cpu_shared_set`` live in ``[compute]``;
``reserved_host_memory_mb`` and ``reserved_huge_pages`` in ``[DEFAULT]``,
exactly where nova.conf has them, so one file configures both.
"""

from oslo_config import cfg, types

compute_group = cfg.OptGroup("compute", title="Compute host options")

compute_opts = [
    cfg.StrOpt(
        "cpu_dedicated_set",
        help="Host CPUs for pinned (dedicated) guest vCPUs, as a CPU set "
        'string such as "4-12,^8,15". Must not overlap cpu_shared_set.',
    ),
    cfg.BoolOpt(
        "packing_host_numa_cells_allocation_strategy",
        default=False,
        help="Place guest cells on the most used host cells first (pack) "
        "instead of the least used (spread, the default), as in Nova.",
    ),
    cfg.StrOpt(
        "cpu_shared_set",
        help="Host CPUs for unpinned (shared) guest vCPUs and emulator "
        'threads, as a CPU set string such as "0-3".',
    ),
]

default_opts = [
    cfg.IntOpt(
        "reserved_host_memory_mb",
        default=512,
        min=0,
        help="Memory in MiB kept for the host and never given to guests.",
    ),
    cfg.IntOpt(
        "reserved_host_cpus",
        default=0,
        min=0,
        help="Host CPUs kept for the host: reported as reserved VCPU "
        "inventory (hosts without slices).",
    ),
    cfg.IntOpt(
        "reserved_host_disk_mb",
        default=0,
        min=0,
        help="Disk in MiB kept for the host: reserved DISK_GB, rounded up "
        "(hosts without slices).",
    ),
    cfg.FloatOpt(
        "cpu_allocation_ratio",
        min=0.0,
        help="VCPU overcommit ratio reported to Placement. Unset: "
        "initial_cpu_allocation_ratio.",
    ),
    cfg.FloatOpt(
        "ram_allocation_ratio",
        min=0.0,
        help="MEMORY_MB overcommit ratio. Unset: "
        "initial_ram_allocation_ratio.",
    ),
    cfg.FloatOpt(
        "disk_allocation_ratio",
        min=0.0,
        help="DISK_GB overcommit ratio. Unset: initial_disk_allocation_ratio.",
    ),
    cfg.FloatOpt(
        "initial_cpu_allocation_ratio",
        default=4.0,
        min=0.0,
        help="VCPU ratio when cpu_allocation_ratio is unset (Nova's 4.0).",
    ),
    cfg.FloatOpt(
        "initial_ram_allocation_ratio",
        default=1.0,
        min=0.0,
        help="MEMORY_MB ratio when ram_allocation_ratio is unset.",
    ),
    cfg.FloatOpt(
        "initial_disk_allocation_ratio",
        default=1.0,
        min=0.0,
        help="DISK_GB ratio when disk_allocation_ratio is unset.",
    ),
    cfg.MultiOpt(
        "reserved_huge_pages",
        item_type=types.Dict(),
        help="Huge pages kept for the host, one value per NUMA cell and "
        "size: node:0,size:2048,count:64 (size in KiB unless it has a unit, "
        "e.g. size:1GB).",
    ),
]


def register_opts(conf):
    conf.register_group(
        cfg.OptGroup(compute_group.name, title=compute_group.title)
    )
    conf.register_opts(compute_opts, group=compute_group.name)
    conf.register_opts(default_opts)


def list_opts():
    return {compute_group: compute_opts, "DEFAULT": default_opts}
