"""CPU policy, thread policy, emulator threads, realtime and masks.

Nova's rules (``nova/virt/hardware.py``, 34.0): the flavor wins over the
image except where the image may only refine it; ``resources:VCPU`` /
``resources:PCPU`` stand in for a CPU policy and cannot be combined with
one; ``trait:HW_CPU_HYPERTHREADING`` stands in for a thread policy; and a
thread policy, an isolated emulator thread or realtime need pinned CPUs.
"""

import dataclasses
import re

from nova_slices.request.specs import (
    as_bool,
    as_choice,
    as_int,
    as_mask,
    fail,
)

SHARED, DEDICATED, MIXED = "shared", "dedicated", "mixed"
CPU_POLICIES = (SHARED, DEDICATED, MIXED)
PREFER, ISOLATE, REQUIRE = "prefer", "isolate", "require"
THREAD_POLICIES = (PREFER, ISOLATE, REQUIRE)
EMULATOR_POLICIES = ("share", "isolate")
# nova/virt/hardware.py derives policies from numbered groups only
_RESOURCE_RE = re.compile(r"^resources([1-9][0-9]*)?:(.+)$")
_TRAIT_RE = re.compile(r"^trait([1-9][0-9]*)?:(.+)$")


@dataclasses.dataclass(frozen=True)
class CpuConstraints:
    policy: str | None
    thread_policy: str | None
    emulator_policy: str | None
    realtime_cpus: frozenset | None
    #: vCPUs pinned 1:1 (all for dedicated, the mask for mixed)
    dedicated_cpus: frozenset


#: ``os_traits.HW_CPU_HYPERTHREADING``, spelled out: importing os_traits
#: walks its whole package, a cost every ``request`` would pay for a name
_HYPERTHREADING = "HW_CPU_HYPERTHREADING"


def cpu_policy(specs):
    flavor, image = specs.get("cpu_policy")
    if flavor is not None:
        as_choice("hw:cpu_policy", flavor, CPU_POLICIES, "cpu-policy-invalid")
    if image is not None:
        as_choice("hw_cpu_policy", image, CPU_POLICIES, "cpu-policy-invalid")
    if flavor == DEDICATED:
        return flavor
    if (
        flavor == MIXED
        and image == DEDICATED
        or flavor == SHARED
        and image in (MIXED, DEDICATED)
    ):
        raise fail(
            "image-cpu-policy-forbidden",
            "hw_cpu_policy",
            image,
            f"the flavor sets hw:cpu_policy={flavor}, which an image may "
            "not raise; drop the image property or change the flavor",
        )
    return flavor or image


def thread_policy(specs):
    flavor, image = specs.get("cpu_thread_policy")
    if flavor is not None:
        as_choice(
            "hw:cpu_thread_policy",
            flavor,
            THREAD_POLICIES,
            "cpu-thread-policy-invalid",
        )
    if image is not None:
        as_choice(
            "hw_cpu_thread_policy",
            image,
            THREAD_POLICIES,
            "cpu-thread-policy-invalid",
        )
    if flavor in (None, PREFER):
        return flavor or image
    if image is not None and image != flavor:
        raise fail(
            "image-cpu-thread-policy-forbidden",
            "hw_cpu_thread_policy",
            image,
            f"the flavor sets hw:cpu_thread_policy={flavor}; an image "
            "may only repeat it",
        )
    return flavor


def emulator_policy(specs):
    value = specs.flavor_only("hw:emulator_threads_policy")
    if not value:
        return None
    return as_choice(
        "hw:emulator_threads_policy",
        value,
        EMULATOR_POLICIES,
        "emulator-threads-policy-invalid",
    )


def realtime_cpus(specs, vcpus, emulator):
    enabled = specs.flavor_only("hw:cpu_realtime")
    flavor_mask, image_mask = specs.get("cpu_realtime_mask")
    if enabled is None or not as_bool(
        "hw:cpu_realtime", enabled, "cpu-realtime-invalid"
    ):
        return None
    # the image's mask is more specific, so it wins (as in Nova)
    key = "hw_cpu_realtime_mask" if image_mask else "hw:cpu_realtime_mask"
    mask = image_mask or flavor_mask
    every = frozenset(range(vcpus))
    cpus = (
        as_mask(key, mask, vcpus, "realtime-mask-invalid") if mask else every
    )
    if not cpus <= every:
        raise fail(
            "realtime-mask-invalid",
            key,
            mask,
            f"names vCPUs outside 0-{vcpus - 1}",
        )
    if cpus == every and not emulator:
        raise fail(
            "realtime-mask-invalid",
            key,
            mask,
            "every vCPU would be realtime; leave at least one for the "
            "emulator (e.g. ^0), or set hw:emulator_threads_policy",
        )
    return cpus


def dedicated_mask(specs, vcpus):
    key = "hw:cpu_dedicated_mask"
    mask = specs.flavor_only(key)
    if not mask:
        return None
    cpus = as_mask(key, mask, vcpus, "dedicated-mask-invalid")
    every = frozenset(range(vcpus))
    if not cpus <= every:
        raise fail(
            "dedicated-mask-invalid",
            key,
            mask,
            f"names vCPUs outside 0-{vcpus - 1}",
        )
    if cpus == every:
        raise fail(
            "dedicated-mask-invalid",
            key,
            mask,
            "a mixed guest needs at least one shared vCPU; use "
            "hw:cpu_policy=dedicated to pin them all",
        )
    return cpus


def cpu_resources(specs):
    """VCPU and PCPU asked for through ``resourcesN:`` keys.

    Returns {class: (total, first key)}.
    """
    totals = {}
    for key, value in sorted(specs.flavor.items()):
        match = _RESOURCE_RE.match(key)
        if match and match.group(2) in ("VCPU", "PCPU"):
            amount = as_int(
                key, value, 0, "resources-invalid", "a non-negative integer"
            )
            total, first = totals.get(match.group(2), (0, key))
            totals[match.group(2)] = (total + amount, first)
    return totals


def hyperthreading_trait(specs):
    for key, value in specs.flavor.items():
        match = _TRAIT_RE.match(key)
        if match and match.group(2) == _HYPERTHREADING:
            return key, value
    # Nova reads image ``trait:NAME=required`` into traits_required
    key = f"trait:{_HYPERTHREADING}"
    if specs.image.get(key) == "required":
        return key, "required"
    return None, None


def cpu_constraints(specs, vcpus):
    policy = cpu_policy(specs)
    policy_key = _source(specs, "cpu_policy")
    threads = thread_policy(specs)
    threads_key = _source(specs, "cpu_thread_policy")
    emulator = emulator_policy(specs)
    realtime = realtime_cpus(specs, vcpus, emulator)
    dedicated = dedicated_mask(specs, vcpus)
    resources = cpu_resources(specs)
    want_vcpu, vcpu_key = resources.get("VCPU", (0, None))
    want_pcpu, pcpu_key = resources.get("PCPU", (0, None))
    if policy and (want_vcpu or want_pcpu):
        raise fail(
            "resources-with-cpu-policy",
            policy_key,
            policy,
            "cannot be combined with resources:VCPU or resources:PCPU; use "
            "one or the other",
        )
    if want_vcpu and want_pcpu:
        raise fail(
            "resources-vcpu-and-pcpu",
            pcpu_key,
            specs.flavor[pcpu_key],
            f"cannot be combined with {vcpu_key}",
        )
    if want_pcpu:
        need = vcpus + 1 if emulator == "isolate" else vcpus
        if want_pcpu != need:
            raise fail(
                "pcpu-count-mismatch",
                pcpu_key,
                specs.flavor[pcpu_key],
                f"PCPUs must add up to exactly {need} (the flavor's vCPUs"
                + (
                    " + 1 for the isolated emulator thread)"
                    if need > vcpus
                    else ")"
                ),
            )
        policy, policy_key = DEDICATED, pcpu_key
    if want_vcpu:
        policy, policy_key = SHARED, vcpu_key
    ht_key, ht_value = hyperthreading_trait(specs)
    if ht_key and threads:
        raise fail(
            "hyperthreading-trait-with-thread-policy",
            ht_key,
            ht_value,
            "cannot be combined with hw:cpu_thread_policy; use one or the "
            "other",
        )
    if ht_value == "forbidden":
        threads, threads_key = ISOLATE, ht_key
    elif ht_value == "required":
        threads, threads_key = REQUIRE, ht_key
    if policy in (SHARED, None):
        _needs_pinning(
            specs, threads, threads_key, emulator, dedicated, realtime
        )
    elif policy == DEDICATED:
        if dedicated:
            raise fail(
                "dedicated-mask-needs-mixed",
                "hw:cpu_dedicated_mask",
                specs.flavor.get("hw:cpu_dedicated_mask"),
                "only applies with hw:cpu_policy=mixed",
            )
        dedicated = frozenset(range(vcpus))
    else:  # mixed
        if realtime and dedicated:
            raise fail(
                "mixed-mask-conflict",
                "hw:cpu_dedicated_mask",
                specs.flavor.get("hw:cpu_dedicated_mask"),
                "a mixed guest takes its pinned vCPUs from either "
                "hw:cpu_dedicated_mask or the realtime mask, not both",
            )
        if not (realtime or dedicated):
            raise fail(
                "mixed-mask-required",
                policy_key,
                MIXED,
                "needs hw:cpu_dedicated_mask (or hw:cpu_realtime with a "
                "mask) to say which vCPUs are pinned",
            )
        dedicated = dedicated or realtime
    return CpuConstraints(
        policy, threads, emulator, realtime, dedicated or frozenset()
    )


def _source(specs, name):
    """The key that decided ``name``: the flavor's when it set one."""
    flavor_key = f"hw:{name}"
    return flavor_key if specs.flavor.get(flavor_key) else f"hw_{name}"


def _needs_pinning(specs, threads, threads_key, emulator, dedicated, realtime):
    why = None
    if threads:
        raw = specs.flavor.get(threads_key, specs.image.get(threads_key))
        why = ("thread-policy-needs-dedicated", threads_key, raw)
    elif emulator == "isolate":
        why = (
            "emulator-isolate-needs-dedicated",
            "hw:emulator_threads_policy",
            emulator,
        )
    elif dedicated:
        why = (
            "dedicated-mask-needs-mixed",
            "hw:cpu_dedicated_mask",
            specs.flavor.get("hw:cpu_dedicated_mask"),
        )
    elif realtime:
        why = (
            "realtime-needs-dedicated",
            "hw:cpu_realtime",
            specs.flavor.get("hw:cpu_realtime"),
        )
    if why:
        raise fail(
            why[0],
            why[1],
            why[2],
            "needs pinned vCPUs: set hw:cpu_policy=dedicated (or mixed)",
        )
