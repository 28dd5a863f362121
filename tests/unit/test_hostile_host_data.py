"""Hostile host data: capabilities and node devices that must be refused,
quickly, with a code naming the element and the source.

One row per refusal: the document, the code, and words the message must
hold (the element or attribute and the offending value).  Every row also
checks that the error names its source (``key`` and the message's start)
and that the refusal comes back within :data:`BOUND` seconds: 100,000
CPUs took 36 s before the counts were bounded.
"""

import time
from typing import NamedTuple

import pytest
from lxml import etree

from nova_slices.errors import HostError
from nova_slices.host import capabilities, devices
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import parse_node_devices, split_node_file
from nova_slices.host.topology import Cell, Cpu, HostTopology, PagePool
from nova_slices.virt.host_check import check_domain
from tests.fixtures.scheduling import EXCLUSIVE
from tests.unit.test_capabilities import _caps, _cell

# wall-clock bounds: see tests/fixtures/scheduling.py
pytestmark = EXCLUSIVE

#: seconds any refusal here may take (each takes milliseconds)
BOUND = 5.0
SOURCE = "--capabilities-xml /tmp/hostile.xml"


class Bad(NamedTuple):
    id: str
    xml: object  # text, or a function making it (large documents)
    code: str
    words: tuple


def _cpus(n):
    return "".join(f"<cpu id='{i}'/>" for i in range(n))


def _many_cells(n):
    return _caps("".join(_cell(i) for i in range(n)))


def _pages(size="4", count="10", unit="KiB"):
    return f"<pages unit='{unit}' size='{size}'>{count}</pages>"


CAPS = [
    Bad(
        "100k-cpus",
        lambda: _caps(_cell(0, _cpus(100_000))),
        "host.capabilities-too-many",
        ("100000 <cpu>", f"{capabilities.MAX_CPUS} CPUs"),
    ),
    Bad(
        "too-many-cells",
        lambda: _many_cells(capabilities.MAX_CELLS + 1),
        "host.capabilities-too-many",
        (f"{capabilities.MAX_CELLS + 1} <cell>", "NUMA cells"),
    ),
    Bad(
        "too-many-page-pools",
        _caps(
            _cell(
                0,
                extra="".join(_pages(str(2**i)) for i in range(2, 2 + 17)),
            )
        ),
        "host.capabilities-too-many",
        ("17 <pages>", "16 page pools"),
    ),
    Bad(
        "oversized",
        lambda: " " * (capabilities.MAX_CAPABILITIES_BYTES + 1),
        "host.capabilities-too-large",
        (f"limit of {capabilities.MAX_CAPABILITIES_BYTES} bytes",),
    ),
    Bad(
        "doctype-entity",
        "<!DOCTYPE c [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
        + _caps(_cell(0, memory="<memory unit='KiB'>&x;</memory>")),
        "host.capabilities-doctype",
        ("DOCTYPE",),
    ),
    Bad(
        "undefined-entity",
        _caps(_cell(0, memory="<memory unit='KiB'>&x;</memory>")),
        "host.malformed-capabilities",
        ("Entity 'x' not defined",),
    ),
    Bad(
        "negative-memory",
        _caps(_cell(0, memory="<memory unit='KiB'>-1048576</memory>")),
        "host.value-out-of-range",
        ("<cell id='0'> <memory>", "-1048576"),
    ),
    Bad(
        "negative-page-count",
        _caps(_cell(0, extra=_pages(count="-5"))),
        "host.value-out-of-range",
        ("<pages size='4'> count", "-5"),
    ),
    Bad(
        "fractional-page-count",
        _caps(_cell(0, extra=_pages(count="1.5"))),
        "host.invalid-capabilities",
        ("<pages size='4'> count", "'1.5'"),
    ),
    Bad(
        "zero-page-size",
        _caps(_cell(0, extra=_pages(size="0"))),
        "host.value-out-of-range",
        ("<pages size='0'> size", "1 KiB or more"),
    ),
    Bad(
        "negative-page-size",
        _caps(_cell(0, extra=_pages(size="-2048"))),
        "host.value-out-of-range",
        ("<pages size='-2048'> size", "-2048"),
    ),
    Bad(
        "page-size-twice",
        _caps(_cell(0, extra=_pages() + _pages(count="3"))),
        "host.duplicate-pages",
        ("<pages size='4'>", "listed twice"),
    ),
    Bad(
        "negative-cell-id",
        _caps(_cell(-1, "<cpu id='0'/>")),
        "host.value-out-of-range",
        ("<cell id>", "-1", "0 to 1023"),
    ),
    Bad(
        "huge-cell-id",
        _caps(_cell(99999, "<cpu id='0'/>")),
        "host.value-out-of-range",
        ("<cell id>", "99999"),
    ),
    Bad(
        "negative-cpu-id",
        _caps(_cell(0, "<cpu id='-3'/>")),
        "host.value-out-of-range",
        ("<cpu id>", "-3"),
    ),
    Bad(
        "huge-cpu-id",
        _caps(_cell(0, "<cpu id='99999999999'/>")),
        "host.value-out-of-range",
        ("<cpu id>", "99999999999", "0 to 65535"),
    ),
    Bad(
        "socket-below-unknown",
        _caps(_cell(0, "<cpu id='0' socket_id='-5'/>")),
        "host.value-out-of-range",
        ("socket_id", "-5", "-1: unknown"),
    ),
    Bad(
        "negative-distance",
        _caps(
            _cell(
                0,
                "<cpu id='0'/>",
                extra="<distances><sibling id='0' value='-10'/></distances>",
            )
        ),
        "host.value-out-of-range",
        ("<sibling value>", "-10"),
    ),
    Bad(
        "sibling-range-hangs",
        _caps(_cell(0, "<cpu id='0' siblings='0-99999999999'/>")),
        "host.invalid-capabilities",
        ("siblings='0-99999999999'", "65535"),
    ),
    Bad(
        "too-many-threads",
        _caps(
            _cell(
                0,
                "".join(f"<cpu id='{i}' siblings='0-64'/>" for i in range(65)),
            )
        ),
        "host.invalid-capabilities",
        ("siblings='0-64'", "65 ids", "64 allowed"),
    ),
]


def _assert_refused(call, code, words, source):
    start = time.monotonic()
    with pytest.raises(HostError) as info:
        call()
    elapsed = time.monotonic() - start
    err = info.value
    assert err.code == code, err.message
    assert err.key == source
    assert err.message.startswith(f"{source}: ")
    for word in words:
        assert word in err.message
    assert elapsed < BOUND, f"took {elapsed:.1f} s"
    return err


@pytest.mark.parametrize("row", CAPS, ids=[r.id for r in CAPS])
def test_hostile_capabilities(row):
    xml = row.xml() if callable(row.xml) else row.xml
    _assert_refused(
        lambda: parse_capabilities(xml, SOURCE), row.code, row.words, SOURCE
    )


def test_minus_one_socket_is_unknown():
    """The kernel's -1 (no package id, some Arm hosts) is "unknown"."""
    topo = parse_capabilities(
        _caps(_cell(0, "<cpu id='0' socket_id='-1' core_id='-1'/>"))
    )
    cpu = topo.cell(0).cpus[0]
    assert (cpu.socket, cpu.core) == (None, None)


def test_many_cpus_listing_one_sibling_text_parse_once():
    """Equal sibling texts share one set and the sibling check is linear:
    the quadratic check took 3.4 s of a 32,768-CPU host's 3.7 s."""
    n = capabilities.MAX_CPUS
    cpus = "".join(
        f"<cpu id='{i}' siblings='{i - i % 2}-{i - i % 2 + 1}'/>"
        for i in range(n)
    )
    topo = parse_capabilities(_caps(_cell(0, cpus)))
    cell = topo.cell(0)
    assert len(cell.cpus) == n
    assert cell.cpus[0].siblings is cell.cpus[1].siblings
    assert cell.siblings()[-1] == (n - 2, n - 1)


# -- node devices ---------------------------------------------------------

PCI = (
    "<device><name>pci_0000_3b_00_0</name><capability type='pci'>"
    "<class>0x030000</class>"
    "<domain>{domain}</domain><bus>0x3b</bus><slot>0x00</slot>"
    "<function>0x0</function>"
    "<product id='0x20b5'/><vendor id='{vendor}'/>"
    "{extra}</capability></device>"
)


def _pci(domain="0x0000", vendor="0x10de", extra=""):
    return PCI.format(domain=domain, vendor=vendor, extra=extra)


def _mdev_types(available):
    return (
        "<capability type='mdev_types'><type id='nvidia-35'>"
        f"<availableInstances>{available}</availableInstances>"
        "<deviceAPI>vfio-pci</deviceAPI></type></capability>"
    )


NODEDEV = [
    Bad(
        "numa-node-not-a-number",
        _pci(extra="<numa node='abc'/>"),
        "host.invalid-nodedev",
        ("<numa node>", "'abc'"),
    ),
    Bad(
        "numa-node-below-none",
        _pci(extra="<numa node='-5'/>"),
        "host.value-out-of-range",
        ("<numa node>", "-5", "-1 for none"),
    ),
    Bad(
        "numa-node-huge",
        _pci(extra="<numa node='99999'/>"),
        "host.value-out-of-range",
        ("<numa node>", "99999"),
    ),
    Bad(
        "negative-iommu-group",
        _pci(extra="<iommuGroup number='-1'/>"),
        "host.value-out-of-range",
        ("<iommuGroup number>", "-1"),
    ),
    Bad(
        "iommu-group-not-a-number",
        _pci(extra="<iommuGroup number='x'/>"),
        "host.invalid-nodedev",
        ("<iommuGroup number>", "'x'"),
    ),
    Bad(
        "negative-max-vfs",
        _pci(extra="<capability type='virt_functions' maxCount='-8'/>"),
        "host.value-out-of-range",
        ("maxCount", "-8"),
    ),
    Bad(
        "negative-mdev-instances",
        _pci(extra=_mdev_types("-3")),
        "host.value-out-of-range",
        ("'nvidia-35' <availableInstances>", "-3"),
    ),
    Bad(
        "mdev-instances-not-a-number",
        _pci(extra=_mdev_types("lots")),
        "host.invalid-nodedev",
        ("<availableInstances>", "'lots'"),
    ),
    Bad(
        "negative-address",
        _pci(domain="-0x1"),
        "host.value-out-of-range",
        ("<address domain>", "-1"),
    ),
    Bad(
        "vendor-too-wide",
        _pci(vendor="0x10de0"),
        "host.value-out-of-range",
        ("pci_0000_3b_00_0", "69088"),
    ),
    Bad(
        "doctype",
        "<!DOCTYPE device [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>" + _pci(),
        "host.nodedev-doctype",
        ("DOCTYPE",),
    ),
    Bad(
        "oversized",
        lambda: _pci(extra=" " * devices.MAX_NODEDEV_BYTES),
        "host.nodedev-too-large",
        (f"limit of {devices.MAX_NODEDEV_BYTES} bytes",),
    ),
]


@pytest.mark.parametrize("row", NODEDEV, ids=[r.id for r in NODEDEV])
def test_hostile_node_devices(row):
    xml = row.xml() if callable(row.xml) else row.xml
    source = "--nodedev-xml /tmp/hostile.xml"
    _assert_refused(
        lambda: parse_node_devices([xml], None, source),
        row.code,
        row.words,
        source,
    )


NODE_FILES = [
    Bad(
        "too-many-devices",
        lambda: (
            "<node>"
            + "<device><name>d</name></device>"
            * (devices.MAX_NODE_DEVICES + 1)
            + "</node>"
        ),
        "host.nodedev-too-many",
        (f"{devices.MAX_NODE_DEVICES + 1} node devices",),
    ),
    Bad(
        "doctype",
        "<!DOCTYPE node [<!ENTITY a 'aaaaaaaaaa'>]><node>&a;</node>",
        "host.nodedev-doctype",
        ("DOCTYPE",),
    ),
    Bad(
        "oversized",
        lambda: " " * (devices.MAX_NODE_FILE_BYTES + 1),
        "host.nodedev-too-large",
        (f"limit of {devices.MAX_NODE_FILE_BYTES} bytes",),
    ),
]


@pytest.mark.parametrize("row", NODE_FILES, ids=[r.id for r in NODE_FILES])
def test_hostile_node_files(row):
    xml = row.xml() if callable(row.xml) else row.xml
    source = "--nodedev-xml /tmp/node.xml"
    _assert_refused(
        lambda: split_node_file(xml, source), row.code, row.words, source
    )


# -- a domain's CPU sets against the host ----------------------------------


def _host(cpus=4):
    return HostTopology(
        (
            Cell(
                0,
                tuple(Cpu(i, siblings=frozenset({i})) for i in range(cpus)),
                1024 * 1024,
                (PagePool(4, 262144),),
            ),
        )
    )


@pytest.mark.parametrize(
    "xml, words",
    [
        (
            "<domain><vcpu cpuset='0-99999999999'>2</vcpu></domain>",
            ("<vcpu cpuset>", "highest CPU 3", "0-99999999999"),
        ),
        (
            "<domain><cputune><vcpupin vcpu='0' cpuset='2-65535'/>"
            "</cputune></domain>",
            ("<vcpupin vcpu='0'>", "highest CPU 3", "2-65535"),
        ),
        (
            "<domain><numatune><memory nodeset='0-99999999999'/>"
            "</numatune></domain>",
            ("<numatune><memory nodeset>", "highest cell 0"),
        ),
    ],
)
def test_domain_cpusets_are_bounded_by_the_host(xml, words):
    start = time.monotonic()
    problems = check_domain(etree.fromstring(xml), _host(), set())
    assert time.monotonic() - start < BOUND
    assert len(problems) == 1
    for word in words:
        assert word in problems[0]
