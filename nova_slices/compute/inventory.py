"""The compute node's own Placement inventory on a host without slices.

Nova's rules (nova/virt/libvirt/driver.py ``update_provider_tree``):
VCPU counts ``cpu_shared_set`` (every host CPU when neither set is
configured; none when only ``cpu_dedicated_set`` is), with
``reserved_host_cpus`` and the CPU allocation ratio; PCPU counts
``cpu_dedicated_set`` and is never overcommitted; MEMORY_MB is the
host's memory with ``reserved_host_memory_mb``; DISK_GB is the instances
filesystem with ``reserved_host_disk_mb`` rounded up to whole GiB.  An
unset ratio falls back to its ``initial_*`` option, as in Nova.
"""

import dataclasses
import math

import os_resource_classes as orc

from nova_slices.host.restrictions import cpu_pools
from nova_slices.provider_tree import Inventory


@dataclasses.dataclass(frozen=True)
class Ratios:
    cpu: float = 4.0
    ram: float = 1.0
    disk: float = 1.0
    reserved_cpus: int = 0
    reserved_memory_mb: int = 512
    reserved_disk_mb: int = 0

    @classmethod
    def from_conf(cls, conf):
        def pick(value, initial):
            return initial if value is None else value

        return cls(
            pick(conf.cpu_allocation_ratio, conf.initial_cpu_allocation_ratio),
            pick(conf.ram_allocation_ratio, conf.initial_ram_allocation_ratio),
            pick(
                conf.disk_allocation_ratio, conf.initial_disk_allocation_ratio
            ),
            conf.reserved_host_cpus,
            conf.reserved_host_memory_mb,
            conf.reserved_host_disk_mb,
        )


def root_inventories(topology, restrictions, ratios, disk_gb):
    """{resource class: Inventory} of the compute node provider."""
    dedicated = restrictions.dedicated_cpus if restrictions else None
    vcpus = len(cpu_pools(topology.cpu_ids, restrictions)[1])
    out = {}
    if vcpus:
        out[orc.VCPU] = Inventory(
            total=vcpus,
            reserved=min(ratios.reserved_cpus, vcpus),
            allocation_ratio=ratios.cpu,
        )
    if dedicated:
        out[orc.PCPU] = Inventory(total=len(dedicated))
    memory_mb = sum(c.memory_mb for c in topology.cells)
    if memory_mb:
        out[orc.MEMORY_MB] = Inventory(
            total=memory_mb,
            reserved=min(ratios.reserved_memory_mb, memory_mb),
            allocation_ratio=ratios.ram,
        )
    if disk_gb:
        out[orc.DISK_GB] = Inventory(
            total=disk_gb,
            reserved=min(math.ceil(ratios.reserved_disk_mb / 1024), disk_gb),
            allocation_ratio=ratios.disk,
        )
    return out
