"""NUMAFitFilter against Nova's NUMATopologyFilter, same host, same request.

The fit grid's hosts (``benchmarks/fit/scenarios.py``: 16 and 32 NUMA
cells of 8 pinnable CPUs) and guests of 4 and 8 cells, for the scenarios
``fit``, ``partly_used_adv`` (the usable cells sorted last by Nova's
order), ``fail_all`` and ``pci_socket_fail``.  Both filters get the same
Nova objects (``nova_child.NovaInputs.filter_args``: the host's
NUMATopology and PCI pools, a RequestSpec built as the API builds it).
Ours runs in this process; Nova's in a child process killed after
``--nova-timeout`` seconds, so a permutation search that would run for
minutes gives a lower bound.  Each row prints both medians and the ratio
nova / ours, measured in the same run; the last line the ratio at 16
cells x 8 guest cells (goal: at least 1000).

    .venv/bin/python benchmarks/bench_numa_filter.py [--reps N]
        [--nova-timeout S]
"""

import argparse
import os
import statistics
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.fit import nova_child, scenarios  # noqa: E402
from benchmarks.fit.run import NovaWorker, fmt_ms  # noqa: E402

HOSTS = ("16", "32")
GUESTS = (4, 8)
SCENARIOS = ("fit", "partly_used_adv", "fail_all", "pci_socket_fail")


def time_ours(inputs, case, reps):
    from nova_slices.nova.filters import NUMAFitFilter

    class TraitedHost(NUMAFitFilter):
        """The host has COMPUTE_SOCKET_PCI_NUMA_AFFINITY: the filter's one
        Placement read of a host's traits (socket-policy requests only)
        is I/O, not the fit this benchmark compares."""

        def _has_socket_trait(self, host_state, spec_obj):
            return True

    times, passed = [], None
    for _ in range(reps):
        state, spec = inputs.filter_args(case)
        ours = TraitedHost()
        start = time.perf_counter()
        passed = ours.host_passes(state, spec)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), passed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--nova-timeout",
        type=float,
        default=30.0,
        help="seconds Nova's filter may take on one case (default 30)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    inputs = nova_child.NovaInputs(nova_child.load_nova())
    worker = NovaWorker()
    print(
        f"{'scenario':17} | host | guest | ours ms | nova ms        | "
        "nova/ours | answers"
    )
    at_16x8 = []
    try:
        for label in HOSTS:
            for k in GUESTS:
                for scenario in SCENARIOS:
                    case = scenarios.build_case(scenario, label, k)
                    ours_ms, ours_pass = time_ours(inputs, case, args.reps)
                    nova = worker.run(
                        case, args.reps, args.nova_timeout, nova_filter=True
                    )
                    if "error" in nova:
                        nova_text, ratio, answers = "error", "-", "-"
                        print(f"  Nova: {nova['error']}", file=sys.stderr)
                    elif nova.get("timeout"):
                        nova_ms = args.nova_timeout * 1000
                        nova_text = f"> {args.nova_timeout:g} s"
                        ratio = f"> {nova_ms / ours_ms:.0f}"
                        answers = f"ours {ours_pass}, nova -"
                    else:
                        nova_ms = statistics.median(nova["ms"])
                        nova_text = fmt_ms(nova_ms)
                        ratio = f"{nova_ms / ours_ms:.1f}"
                        same = (
                            "same" if nova["fits"] == ours_pass else "DIFFER"
                        )
                        answers = f"{same} ({ours_pass})"
                    if (label, k) == ("16", 8):
                        at_16x8.append((scenario, ratio))
                    print(
                        f"{scenario:17} | {label:>4} | {k:>5} | "
                        f"{fmt_ms(ours_ms):>7} | {nova_text:>14} | "
                        f"{ratio:>9} | {answers}"
                    )
                    sys.stdout.flush()
    finally:
        worker.stop()
    print(
        "16 cells x 8 guest cells, nova/ours: "
        + ", ".join(f"{s} {r}" for s, r in at_16x8)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
