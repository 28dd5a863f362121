"""What the operator keeps from guests: CPU sets, memory, huge pages.

Checked against the host at startup, because a typo here (a CPU the host
lacks, a page size it has no pool of, two sets that overlap) otherwise
shows up much later as a guest pinned to the wrong CPU or a fit that
never succeeds.  Every error names the option, the value and what would be
valid.
"""

import dataclasses

from nova_slices.cpuset import CpusetTooLarge, format_cpuset, parse_cpuset
from nova_slices.errors import ConfigError

DEDICATED = "[compute] cpu_dedicated_set"
SHARED = "[compute] cpu_shared_set"
MEMORY = "[DEFAULT] reserved_host_memory_mb"
PAGES = "[DEFAULT] reserved_huge_pages"


@dataclasses.dataclass(frozen=True)
class HostRestrictions:
    #: None: option unset
    dedicated_cpus: frozenset | None = None
    shared_cpus: frozenset | None = None
    reserved_memory_mb: int = 0
    #: ((cell id, page size KiB), count) pairs
    reserved_pages: tuple = ()

    def reserved(self, cell_id, size_kb):
        return dict(self.reserved_pages).get((cell_id, size_kb), 0)

    def to_dict(self):
        def ids(s):
            return None if s is None else sorted(s)

        return {
            "cpu_dedicated_set": ids(self.dedicated_cpus),
            "cpu_shared_set": ids(self.shared_cpus),
            "reserved_host_memory_mb": self.reserved_memory_mb,
            "reserved_huge_pages": [
                {"cell": cell, "size_kb": size, "count": count}
                for (cell, size), count in self.reserved_pages
            ],
        }


def _cpuset(option, text, host_cpus):
    if text is None:
        return None
    try:
        cpus = frozenset(parse_cpuset(text))
    except CpusetTooLarge as exc:
        # refused before expanding: 0-99999999999 would take minutes
        raise ConfigError(
            f"{option} = {_short(text)}: {exc}; this host's CPUs are "
            f"{format_cpuset(host_cpus)}",
            code="config.cpuset-too-large",
            key=option,
            value=text,
        ) from None
    except ValueError as exc:
        raise ConfigError(
            f"{option} = {_short(text)}: {exc}; write a CPU set such as "
            "4-12,^8,15",
            code="config.cpuset-invalid",
            key=option,
            value=text,
        ) from None
    missing = cpus - host_cpus
    if missing:
        raise ConfigError(
            f"{option} = {_short(text)} names CPU(s) "
            f"{format_cpuset(missing)} that this host does not have; host "
            "CPUs are "
            f"{format_cpuset(host_cpus)}",
            code="config.cpus-not-on-host",
            key=option,
            value=text,
        )
    return cpus


def _short(text, width=60):
    """An option's value for a message, cut short: it may be huge."""
    return repr(text if len(text) <= width else text[:width] + "...")


def _page_size_kb(raw, entry):
    try:
        return int(raw)
    except ValueError:
        pass
    from oslo_utils import strutils  # slow import: only here

    try:
        size = strutils.string_to_bytes(raw, return_int=True)
    except ValueError:
        size = None
    if size is None or size <= 0 or size % 1024:
        # a size that is not whole KiB would be rounded to a pool size
        # nobody wrote
        raise ConfigError(
            f"{PAGES} = {entry}: size {raw!r} is not a size (KiB, or a "
            "whole number of KiB with a unit such as 2MB, 1GB)",
            code="config.reserved-pages-invalid",
            key=PAGES,
            value=entry,
        )
    return size // 1024


def _reserved_pages(entries, topology):
    out = {}
    for entry in entries:
        text = ",".join(f"{k}:{v}" for k, v in entry.items())
        unknown = set(entry) - {"node", "size", "count"}
        if unknown:
            raise ConfigError(
                f"{PAGES} = {text}: unknown key(s) "
                f"{', '.join(sorted(unknown))}; write node:0,size:2048,"
                "count:64 (node, size and count only)",
                code="config.reserved-pages-invalid",
                key=PAGES,
                value=text,
            )
        missing = {"node", "size", "count"} - set(entry)
        if missing:
            raise ConfigError(
                f"{PAGES} = {text}: missing {', '.join(sorted(missing))}; "
                "write node:0,size:2048,count:64",
                code="config.reserved-pages-invalid",
                key=PAGES,
                value=text,
            )
        try:
            node, count = int(entry["node"]), int(entry["count"])
        except ValueError:
            raise ConfigError(
                f"{PAGES} = {text}: node and count must be integers",
                code="config.reserved-pages-invalid",
                key=PAGES,
                value=text,
            ) from None
        size = _page_size_kb(entry["size"], text)
        cell = topology.cell(node)
        if cell is None:
            raise ConfigError(
                f"{PAGES} = {text}: this host has no NUMA cell {node}; "
                f"cells are {[c.id for c in topology.cells]}",
                code="config.reserved-pages-unknown-cell",
                key=PAGES,
                value=text,
            )
        pool = cell.pool(size)
        if pool is None:
            raise ConfigError(
                f"{PAGES} = {text}: cell {node} has no {size} KiB page pool; "
                f"its pools are {[p.size_kb for p in cell.pages]} KiB",
                code="config.reserved-pages-unknown-size",
                key=PAGES,
                value=text,
            )
        if count < 0 or count > pool.total:
            raise ConfigError(
                f"{PAGES} = {text}: cell {node} has {pool.total} pages of "
                f"{size} KiB; reserve between 0 and {pool.total}",
                code="config.reserved-pages-too-many",
                key=PAGES,
                value=text,
            )
        if (node, size) in out:
            raise ConfigError(
                f"{PAGES} = {text}: cell {node} and {size} KiB pages are "
                "already reserved by another value; give each cell and "
                "size once",
                code="config.reserved-pages-duplicate",
                key=PAGES,
                value=text,
            )
        out[(node, size)] = count
    return tuple(sorted(out.items()))


def load_restrictions(conf, topology):
    """Validate the restriction options against ``topology``."""
    host_cpus = topology.cpu_ids
    dedicated = _cpuset(DEDICATED, conf.compute.cpu_dedicated_set, host_cpus)
    shared = _cpuset(SHARED, conf.compute.cpu_shared_set, host_cpus)
    if dedicated is not None and shared is not None and dedicated & shared:
        raise ConfigError(
            f"{DEDICATED} and {SHARED} overlap on CPU(s) "
            f"{format_cpuset(dedicated & shared)}; a CPU is either "
            "dedicated or shared",
            code="config.cpusets-overlap",
            key=DEDICATED,
            value=format_cpuset(dedicated & shared),
        )
    total_mb = sum(c.memory_mb for c in topology.cells)
    reserved_mb = conf.reserved_host_memory_mb
    if reserved_mb > total_mb:
        raise ConfigError(
            f"{MEMORY} = {reserved_mb} exceeds the host's {total_mb} MiB",
            code="config.reserved-memory-too-large",
            key=MEMORY,
            value=reserved_mb,
        )
    pages = _reserved_pages(conf.reserved_huge_pages or [], topology)
    return HostRestrictions(dedicated, shared, reserved_mb, pages)


def cpu_pools(cpus, restrictions):
    """(dedicated, shared) among ``cpus`` under Nova's CPU-set rules.

    The one definition the fitter, the root inventory and the domain XML
    all use.  Neither set configured: every CPU serves both pinned and
    floating vCPUs (Nova's legacy host).  Either set configured: a CPU is
    dedicated only if ``cpu_dedicated_set`` names it and shared only if
    ``cpu_shared_set`` does, so a host with only ``cpu_dedicated_set``
    has no shared CPUs at all (Nova reports VCPU 0 there).
    """
    cpus = frozenset(cpus)
    ded = restrictions.dedicated_cpus if restrictions else None
    shared = restrictions.shared_cpus if restrictions else None
    if ded is None and shared is None:
        return cpus, cpus
    return (
        cpus & ded if ded else frozenset(),
        cpus & shared if shared else frozenset(),
    )
