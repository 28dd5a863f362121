"""Host restrictions checked against the host at startup."""

import time

import pytest

from nova_slices.cmd.runtime import load_conf
from nova_slices.errors import ConfigError
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.restrictions import load_restrictions
from tests.fixtures.scheduling import EXCLUSIVE
from tests.unit.test_capabilities import DATA

# wall-clock bounds: see tests/fixtures/scheduling.py
pytestmark = EXCLUSIVE


def topo():
    with open(f"{DATA}/vircaps-x86_64-basic.xml") as f:
        return parse_capabilities(f.read())  # 4 cells, CPUs 0-15


def conf_with(tmp_path, text):
    path = tmp_path / "nova.conf"
    path.write_text(text)
    return load_conf([path])


def test_valid_restrictions(tmp_path):
    conf = conf_with(
        tmp_path,
        (
            "[DEFAULT]\nreserved_host_memory_mb = 1024\n"
            "reserved_huge_pages = node:0,size:2048,count:64\n"
            "reserved_huge_pages = node:1,size:1GB,count:1\n"
            "[compute]\ncpu_dedicated_set = 4-15,^8\ncpu_shared_set = 0-3\n"
        ),
    )
    r = load_restrictions(conf, topo())
    assert r.dedicated_cpus == {4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15}
    assert r.shared_cpus == {0, 1, 2, 3}
    assert r.reserved_memory_mb == 1024
    assert r.reserved(0, 2048) == 64 and r.reserved(1, 1048576) == 1
    assert r.reserved(2, 2048) == 0
    assert r.to_dict()["reserved_huge_pages"][0] == {
        "cell": 0,
        "size_kb": 2048,
        "count": 64,
    }


def test_defaults(tmp_path):
    r = load_restrictions(conf_with(tmp_path, ""), topo())
    assert (
        r.dedicated_cpus,
        r.shared_cpus,
        r.reserved_memory_mb,
        r.reserved_pages,
    ) == (None, None, 512, ())


BAD = [
    (
        "[compute]\ncpu_dedicated_set = 0-3\ncpu_shared_set = 3-5\n",
        "config.cpusets-overlap",
        "overlap on CPU(s) 3",
    ),
    (
        "[compute]\ncpu_dedicated_set = 12-20\n",
        "config.cpus-not-on-host",
        "16-20",
    ),
    (
        "[compute]\ncpu_dedicated_set = 0-99999999999\n",
        "config.cpuset-too-large",
        "[compute] cpu_dedicated_set = '0-99999999999': '0-99999999999' "
        "names id 99999999999",
    ),
    (
        "[compute]\ncpu_shared_set = 1,2,^3-99999999999\n",
        "config.cpuset-too-large",
        "this host's CPUs are 0-15",
    ),
    (
        "[compute]\ncpu_shared_set = 0-x\n",
        "config.cpuset-invalid",
        "[compute] cpu_shared_set = '0-x'",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:9,size:2048,count:1\n",
        "config.reserved-pages-unknown-cell",
        "no NUMA cell 9",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:0,size:16384,count:1\n",
        "config.reserved-pages-unknown-size",
        "no 16384 KiB page pool",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:0,size:2048,count:99999\n",
        "config.reserved-pages-too-many",
        "between 0 and 4096",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:0,size:2048\n",
        "config.reserved-pages-invalid",
        "missing count",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:0,size:2M,count:1\n",
        "config.reserved-pages-invalid",
        "'2M'",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:a,size:2048,count:1\n",
        "config.reserved-pages-invalid",
        "integers",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:0,size:2048,count:1,"
        "pagesize:4\n",
        "config.reserved-pages-invalid",
        "unknown key(s) pagesize",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:0,size:2048,count:1\n"
        "reserved_huge_pages = node:0,size:2MB,count:8\n",
        "config.reserved-pages-duplicate",
        "node:0,size:2MB,count:8: cell 0 and 2048 KiB",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:0,size:1536B,count:1\n",
        "config.reserved-pages-invalid",
        "size '1536B'",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:0,size:-2MB,count:1\n",
        "config.reserved-pages-invalid",
        "size '-2MB'",
    ),
    (
        "[DEFAULT]\nreserved_huge_pages = node:0,size:2048,count:-1\n",
        "config.reserved-pages-too-many",
        "count:-1",
    ),
    (
        "[DEFAULT]\nreserved_host_memory_mb = 999999\n",
        "config.reserved-memory-too-large",
        "10240 MiB",
    ),
]


@pytest.mark.parametrize("text,code,words", BAD, ids=[b[1] for b in BAD])
def test_bad_restrictions(tmp_path, text, code, words):
    conf = conf_with(tmp_path, text)
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_restrictions(conf, topo())
    assert time.monotonic() - start < 5.0
    assert info.value.code == code
    assert info.value.key in info.value.message
    assert words in info.value.message
    assert info.value.key in info.value.message
