"""Flavor + image -> one validated GuestRequest, in Nova's order."""

from nova_slices.request import cpu, devices, memory, numa, resources
from nova_slices.request.model import GuestRequest
from nova_slices.request.specs import Specs, fail
from nova_slices.slices import FLAVOR_CLASS_KEY


def build_request(vcpus, memory_mb, extra_specs=None, image_props=None):
    """Validate and normalize; raise RequestError with a stable code."""
    if type(vcpus) is not int or vcpus < 1:
        raise fail(
            "vcpus-invalid", "vcpus", vcpus, "a flavor needs at least 1 vCPU"
        )
    if type(memory_mb) is not int or memory_mb < 1:
        raise fail(
            "memory-invalid",
            "memory_mb",
            memory_mb,
            "a flavor needs at least 1 MB of memory",
        )
    specs = Specs(extra_specs, image_props)
    cpus = cpu.cpu_constraints(specs, vcpus)
    nodes = numa.node_count(specs)
    pagesize = memory.page_size(specs)
    locked = memory.locked_memory(specs, pagesize)
    implied = pagesize is not None or cpus.policy in (cpu.DEDICATED, cpu.MIXED)
    cells = numa.guest_cells(
        specs, vcpus, memory_mb, cpus.dedicated_cpus, implied, nodes
    )
    policy = devices.pci_numa_policy(specs)
    aliases = devices.pci_aliases(specs)
    res, traits = resources.resources_and_traits(specs)
    policy_of_groups = resources.group_policy(specs)
    # the slice class is the slice driver's business, not the request's
    specs.flavor_only(FLAVOR_CLASS_KEY)
    return GuestRequest(
        vcpus=vcpus,
        memory_mb=memory_mb,
        cells=cells,
        cpu_policy=cpus.policy,
        cpu_thread_policy=cpus.thread_policy,
        emulator_threads_policy=cpus.emulator_policy,
        realtime_cpus=cpus.realtime_cpus,
        pagesize=pagesize,
        locked_memory=locked,
        pci_numa_affinity_policy=policy,
        pci_aliases=aliases,
        resources=res,
        traits=traits,
        group_policy=policy_of_groups,
        ignored=specs.unused(),
    )
