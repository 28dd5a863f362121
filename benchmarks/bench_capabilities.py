"""How long parse_capabilities takes on big hosts, against bare lxml.

Generates the 512-thread host (2 x 128 cores x 2 threads, 8 cells) and the
34-cell GB200 host with tests/hostgen.py, then times, in the same run,
``parse_capabilities`` and the baseline it cannot beat: a bare
``lxml.etree.fromstring`` of the same document.  Prints median and p95 in
ms and the ratio parse / baseline.  The issue's goal: median under 50 ms
for the 512-thread host.

    python benchmarks/bench_capabilities.py [--rounds N]
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lxml import etree  # noqa: E402

from nova_slices.host.capabilities import parse_capabilities  # noqa: E402
from tests import hostgen  # noqa: E402

GOAL_MS = 50.0


def times_ms(fn, arg, rounds):
    fn(arg)  # warm up
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(arg)
        out.append((time.perf_counter() - start) * 1000)
    return out


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def bench(name, xml, rounds):
    data = xml.encode()
    topo = parse_capabilities(data)
    cpus = len(topo.cpu_ids)
    parse = times_ms(parse_capabilities, data, rounds)
    base = times_ms(etree.fromstring, data, rounds)
    med, base_med = statistics.median(parse), statistics.median(base)
    print(
        f"{name}: {len(topo.cells)} cells, {cpus} CPUs, "
        f"{len(data) / 1024:.0f} KiB of XML, {rounds} rounds"
    )
    print(
        f"  parse_capabilities   median {med:7.2f} ms   "
        f"p95 {p95(parse):7.2f} ms"
    )
    print(
        f"  lxml fromstring      median {base_med:7.2f} ms   "
        f"p95 {p95(base):7.2f} ms"
    )
    print(f"  ratio parse/baseline {med / base_med:7.1f}x")
    return med


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    med = bench(
        "two_socket_512_threads",
        hostgen.two_socket_512_threads(),
        args.rounds,
    )
    bench("gb200_34", hostgen.gb200_34(), args.rounds)
    verdict = "meets" if med < GOAL_MS else "MISSES"
    print(
        f"goal: 512-thread median under {GOAL_MS:.0f} ms: {verdict} "
        f"({med:.2f} ms)"
    )


if __name__ == "__main__":
    main()
