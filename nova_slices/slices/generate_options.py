"""The flags of ``generate-slices`` read into :class:`generate.Options`.

Each flag is read here, as text, rather than by argparse's ``type=``, so
that a bad value is refused like every other input: exit 2 with a
``generate.*`` code naming the flag, the value and what is valid.  What
only the host can judge (a CPU it lacks, a page size it has no pool of)
is the planner's to refuse.
"""

import re

from nova_slices.cpuset import parse_cpuset
from nova_slices.slices.generate import Options, refuse

_ID = re.compile(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{4})")
_ADDRESS = re.compile(
    r"(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])"
)
_CLASS = re.compile(r"(?:0[xX])?((?:[0-9a-fA-F]{2}){1,3})")
_SIZE = re.compile(r"(\d{1,10})\s*([KMG]?)(?:I?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1, "M": 1024, "G": 1024 * 1024}


def gpu_selector(text):
    """``10de:20b5`` -> ("id", "10de", "20b5"); ``0000:17:00.0`` or
    ``17:00.0`` -> ("address", "0000:17:00.0")."""
    value = text.strip()
    match = _ID.fullmatch(value)
    if match:
        return ("id", match.group(1).lower(), match.group(2).lower())
    match = _ADDRESS.fullmatch(value)
    if match:
        domain, bus, slot, function = match.groups()
        return (
            "address",
            f"{domain or '0000'}:{bus}:{slot}.{function}".lower(),
        )
    raise refuse(
        f"--gpu {text!r} is neither VENDOR:PRODUCT (4 hex digits each, "
        "e.g. 10de:20b5) nor a PCI address (0000:17:00.0)",
        "gpu-invalid",
        "--gpu",
        text,
    )


def gpu_class(text):
    """``0x03``, ``0302`` or ``030200`` -> the lower-case prefix."""
    match = _CLASS.fullmatch(text.strip())
    if not match:
        raise refuse(
            f"--gpu-class {text!r} is not a PCI class code prefix: 1 to 3 "
            "bytes of hex, e.g. 0x03 (display controllers), 0x0302 (3D "
            "controllers), 0x1200 (processing accelerators)",
            "gpu-class-invalid",
            "--gpu-class",
            text,
        )
    return match.group(1).lower()


def page_size_kb(text):
    """``4K``, ``2M``, ``1G`` (``2MB``, ``1GiB`` too) -> KiB; a bare
    number is KiB, as in Nova's ``hw:mem_page_size``."""
    match = _SIZE.fullmatch(text.strip())
    kib = int(match.group(1)) * _UNITS[match.group(2).upper()] if match else 0
    if not kib:
        raise refuse(
            f"--page-size {text!r} is not a page size: a number with K, M "
            "or G, e.g. 4K, 2M, 1G",
            "page-size-invalid",
            "--page-size",
            text,
        )
    return kib


def _count(flag, text):
    value = text.strip()
    if not value.isdigit() or len(value) > 9:
        raise refuse(
            f"{flag} {text!r} is not a whole number of 0 or more",
            "option-invalid",
            flag,
            text,
        )
    return int(value)


def _cpuset(text):
    try:
        return frozenset(parse_cpuset(text))
    except ValueError as exc:
        raise refuse(
            f"--reserved-cpus {text!r} is not a CPU set ({exc}); write one "
            "like 0,8,64,72 or 0-1,64-65",
            "reserved-cpus-invalid",
            "--reserved-cpus",
            text,
        ) from None


def parse_options(
    gpus=(),
    gpu_classes=(),
    reserved_cores=None,
    reserved_cpus=None,
    reserved_memory_mb=None,
    page_size=None,
):
    """Options from the flags' text (None: the flag was not given)."""
    if reserved_cores is not None and reserved_cpus is not None:
        raise refuse(
            f"--reserved-cores {reserved_cores} and --reserved-cpus "
            f"{reserved_cpus} both say which CPUs the host keeps: give one",
            "options-conflict",
            "--reserved-cpus",
            reserved_cpus,
        )
    return Options(
        gpus=tuple(dict.fromkeys(gpu_selector(g) for g in gpus)),
        gpu_classes=tuple(dict.fromkeys(gpu_class(c) for c in gpu_classes)),
        reserved_cores=(
            None
            if reserved_cores is None
            else _count("--reserved-cores", reserved_cores)
        ),
        reserved_cpus=(
            None if reserved_cpus is None else _cpuset(reserved_cpus)
        ),
        reserved_memory_mb=(
            None
            if reserved_memory_mb is None
            else _count("--reserved-memory-mb", reserved_memory_mb)
        ),
        page_size_kb=None if page_size is None else page_size_kb(page_size),
    )
