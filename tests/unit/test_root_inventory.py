"""The compute node's inventory on hosts without slices (Nova's rules)."""

import pytest

from nova_slices.compute.inventory import Ratios, root_inventories
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.restrictions import HostRestrictions
from tests.unit.test_host_bundle import CAPS

TOPOLOGY = parse_capabilities(CAPS.read_text())
ALL = TOPOLOGY.cpu_ids


def totals(inventories):
    return {
        rc: (i.total, i.reserved, i.allocation_ratio)
        for rc, i in inventories.items()
    }


@pytest.mark.parametrize(
    "restrictions, vcpu, pcpu",
    [
        (None, (128, 2, 4.0), None),
        (
            HostRestrictions(
                dedicated_cpus=ALL - {0, 64}, shared_cpus={0, 64}
            ),
            (2, 2, 4.0),
            (126, 0, 1.0),
        ),
        (HostRestrictions(dedicated_cpus=ALL), None, (128, 0, 1.0)),
        (HostRestrictions(shared_cpus=frozenset(range(8))), (8, 2, 4.0), None),
    ],
    ids=["no sets", "both sets", "dedicated only", "shared only"],
)
def test_cpu_inventory_follows_the_cpu_sets(restrictions, vcpu, pcpu):
    out = totals(
        root_inventories(TOPOLOGY, restrictions, Ratios(reserved_cpus=2), 100)
    )
    assert out.get("VCPU") == vcpu
    assert out.get("PCPU") == pcpu


def test_memory_and_disk_with_ratios_and_reservations():
    ratios = Ratios(
        cpu=16.0,
        ram=1.5,
        disk=2.0,
        reserved_memory_mb=4096,
        reserved_disk_mb=1025,
    )
    out = totals(root_inventories(TOPOLOGY, None, ratios, 500))
    assert out["MEMORY_MB"] == (4 * 262144, 4096, 1.5)
    # 1025 MiB reserved is 2 whole GiB
    assert out["DISK_GB"] == (500, 2, 2.0)
    assert out["VCPU"] == (128, 0, 16.0)


def test_ratios_fall_back_to_the_initial_options(tmp_path):
    from nova_slices.conf import make_conf

    conf = make_conf()
    conf([], default_config_files=[])
    assert Ratios.from_conf(conf) == Ratios(4.0, 1.0, 1.0, 0, 512, 0)
    conf.set_override("cpu_allocation_ratio", 2.0)
    conf.set_override("initial_ram_allocation_ratio", 1.5)
    assert Ratios.from_conf(conf).cpu == 2.0
    assert Ratios.from_conf(conf).ram == 1.5
