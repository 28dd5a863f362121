"""Our NUMA fitter against Nova's numa_fit_instance_to_host, same inputs.

For every scenario (see ``scenarios.py``) on hosts of 8, 16, 32 and 34
NUMA cells (``34``: 34 CPU cells; ``34g``: GB200-shaped, 18 CPU cells +
16 memory-only cells) and guests of 2, 4 and 8 cells: the median and p95
of ``nova_slices.fit.fitter.fit`` in ms and its outcome; then, when Nova
is importable, Nova's own fit on the same case in a child process
(``nova_child.py``) killed after ``--nova-timeout`` seconds, its time,
the ratio ours / nova (below 1: we are faster), and whether the outcomes
agree.  The last line names the worst case: our slowest median and our
highest ratio.  Goal: every case of ours under 10 ms median, and never
slower than Nova (ratio <= 1).

    python -m benchmarks.fit.run [--quick] [--nova-timeout S] [--no-nova]
    python benchmarks/fit/run.py --hosts 8,16 --scenarios fit,fail_all
"""

import argparse
import importlib.util
import json
import math
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.fit import scenarios  # noqa: E402
from nova_slices.fit.fitter import fit  # noqa: E402
from nova_slices.fit.model import Placement  # noqa: E402

CHILD = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "nova_child.py"
)
GOAL_MS = 10.0
#: seconds Nova may take to import, or to build one case's objects
STARTUP_S = 180.0


def percentile(values, q):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def time_ours(kwargs, reps):
    """(times in ms, result); fewer repetitions when one call is slow."""
    start = time.perf_counter()
    result = fit(**kwargs)  # warm-up, and the result we report
    first = time.perf_counter() - start
    if first > 0.2:
        reps = min(reps, 3)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fit(**kwargs)
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def describe_ours(result):
    if isinstance(result, Placement):
        return "fits", [c.host_cell for c in result.cells]
    code = result.reasons[0].code if result.reasons else "(no reason)"
    return f"no fit: {code}", None


class NovaWorker:
    """``nova_child.py`` as a long-lived process, restarted after a kill."""

    def __init__(self):
        self.proc = None
        self.buf = b""
        self.err = tempfile.TemporaryFile()
        self.broken = None

    def _read(self, timeout):
        """The next message, or None when ``timeout`` passes first."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError(self._stderr_tail())
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def _stderr_tail(self):
        self.err.seek(0)
        text = self.err.read().decode(errors="replace").strip()
        return text.splitlines()[-1] if text else "child exited"

    def start(self):
        self.buf = b""
        self.proc = subprocess.Popen(
            [sys.executable, CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
        )
        try:
            msg = self._read(STARTUP_S)
        except EOFError as exc:
            msg = {"error": f"Nova child died: {exc}"}
        if msg is None or "error" in msg:
            self.broken = (msg or {}).get("error", "Nova import timed out")
            self.stop()
            return False
        # one untimed PCI case first, so that Nova's lazy set-up (alias
        # schema, first deepcopy of the pools) is not billed to a case
        self.run(scenarios.build_case("pci_socket_fail", "8", 2), 1, 60.0)
        return self.proc is not None

    def stop(self):
        if self.proc is not None:
            self.proc.kill()  # our own child, by its pid
            self.proc.wait()
            self.proc.stdout.close()
            self.proc.stdin.close()
            self.proc = None

    def run(self, case, reps, timeout, nova_filter=False):
        """{"ms": [...], "fits", "cells", "guest_cells"} or with
        "timeout": True, or "error".  ``nova_filter``: time Nova's
        NUMATopologyFilter on the case instead of its fit."""
        if self.broken or (self.proc is None and not self.start()):
            return {"error": self.broken}
        msg = {
            "case": case,
            "reps": reps,
            "budget_s": min(2.0, timeout),
            "filter": nova_filter,
        }
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()
        out = {"ms": []}
        try:
            while True:
                got = self._read(STARTUP_S)  # building objects: untimed
                if got is None:
                    self.stop()
                    return {"error": "no answer from the Nova child"}
                if "error" in got:
                    return {"error": got["error"]}
                if "done" in got:
                    out["guest_cells"] = got["guest_cells"]
                    out["pci_devices"] = got["pci_devices"]
                    out["pci_requests"] = got["pci_requests"]
                    return out
                # {"begin": i}: the timed call starts now
                got = self._read(timeout)
                if got is None:
                    self.stop()
                    out["timeout"] = True
                    return out
                if "error" in got:
                    return {"error": got["error"]}
                out["ms"].append(got["ms"])
                out["fits"] = got["fits"]
                out["cells"] = got["cells"]
        except EOFError as exc:
            self.proc.wait()
            self.proc = None
            return {"error": f"Nova child died: {exc}"}


def nova_missing():
    """Why Nova cannot run here, or None (the child imports it)."""
    if importlib.util.find_spec("nova") is None:
        return "no module named 'nova'"
    return None


def fmt_ms(value):
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ratio(value):
    """Two decimals, or two significant digits below 0.01."""
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"


COLUMNS = (
    ("scenario", 17),
    ("host", 4),
    ("guest", 5),
    ("ours med", 8),
    ("ours p95", 8),
    ("nova ms", 14),
    ("ours/nova", 9),
    ("ours result", 34),
    ("nova result", 16),
    ("agree", 5),
)


def row_text(values):
    return " | ".join(
        str(v).ljust(w) if i in (0, 7, 8) else str(v).rjust(w)
        for i, ((_, w), v) in enumerate(zip(COLUMNS, values, strict=True))
    )


def _ratio(med, nova, timeout):
    """ours / Nova's median, None without a Nova time."""
    if nova is None or "error" in nova:
        return None
    if nova.get("timeout"):
        return med / (timeout * 1000)
    return med / statistics.median(nova["ms"])


def worst_line(records):
    """The last line: our slowest median and our highest ratio to Nova."""

    def name(r):
        return f"{r['scenario']} host={r['host']} guest={r['guest_cells']}"

    slow = max(records, key=lambda r: r["ours_median_ms"])
    text = (
        f"worst: ours {fmt_ms(slow['ours_median_ms'])} ms median "
        f"({name(slow)})"
    )
    rated = [r for r in records if r["ratio"] is not None]
    if rated:
        high = max(rated, key=lambda r: r["ratio"])
        bound = "<" if high["nova"].get("timeout") else ""
        text += (
            f"; highest ours/nova {bound}{fmt_ratio(high['ratio'])} "
            f"({name(high)}: "
            f"ours {fmt_ms(high['ours_median_ms'])} ms)"
        )
    return text


def compare(case, kwargs, ours_times, ours_result, nova, timeout):
    """One table row, and the problems it shows."""
    med = statistics.median(ours_times)
    p95 = percentile(ours_times, 0.95)
    outcome, ours_cells = describe_ours(ours_result)
    problems = []
    if med > GOAL_MS:
        problems.append(f"ours median {fmt_ms(med)} ms > {GOAL_MS:g} ms")
    nova_ms = ratio = nova_text = "-"
    agree = "-"
    if nova is not None and "error" in nova:
        nova_text = "error"
        problems.append(f"Nova: {nova['error']}")
    elif nova is not None:
        ours_guest = [
            {"id": c.id, "pcpus": sorted(c.pcpus), "memory_mb": c.memory_mb}
            for c in kwargs["request"].cells
        ]
        theirs = [
            {k: c[k] for k in ("id", "pcpus", "memory_mb")}
            for c in nova.get("guest_cells") or []
        ]
        if nova.get("guest_cells") is not None and theirs != ours_guest:
            problems.append(
                f"guest cells differ: ours {ours_guest} nova {theirs}"
            )
        pooled = nova.get("pci_devices")
        if pooled is not None and pooled != len(case["devices"]):
            problems.append(
                f"Nova's PciDeviceStats pooled {pooled} of "
                f"{len(case['devices'])} devices"
            )
        if nova.get("timeout"):
            nova_ms = f">{timeout:g} s (timeout)"
            ratio = "<" + fmt_ratio(med / (timeout * 1000))
            nova_text = "timeout"
            agree = "n/a"
        else:
            nmed = statistics.median(nova["ms"])
            nova_ms = fmt_ms(nmed)
            ratio = fmt_ratio(med / nmed)
            if med > nmed:
                problems.append(
                    f"ours median {fmt_ms(med)} ms > Nova's {fmt_ms(nmed)} ms"
                )
            nova_text = "fits" if nova["fits"] else "no fit"
            same = nova["fits"] == isinstance(ours_result, Placement)
            agree = "yes" if same else "NO"
            if same and nova["fits"] and nova["cells"] != ours_cells:
                agree = "cells"
                problems.append(
                    f"both fit, on different host cells: ours "
                    f"{ours_cells}, nova {nova['cells']}"
                )
            if not same:
                problems.append(
                    f"outcome differs: ours {outcome}, nova {nova_text}"
                )
    if ours_cells is not None:
        outcome = f"fits {ours_cells}"
        if len(outcome) > 34:
            outcome = outcome[:31] + "..."
    values = (
        case["scenario"],
        case["host"],
        case["k"],
        fmt_ms(med),
        fmt_ms(p95),
        nova_ms,
        ratio,
        outcome,
        nova_text,
        agree,
    )
    record = {
        "scenario": case["scenario"],
        "host": case["host"],
        "guest_cells": case["k"],
        "ours_median_ms": med,
        "ours_p95_ms": p95,
        "ours_result": outcome,
        # ours / Nova's median; Nova's timeout when it timed out (a bound)
        "ratio": _ratio(med, nova, timeout),
        "nova": nova,
        "problems": problems,
        "notes": case["notes"],
    }
    return values, problems, record


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="5 repetitions, 3 Nova repetitions, 3 s Nova timeout",
    )
    parser.add_argument(
        "--reps", type=int, help="our repetitions (default 20; quick 5)"
    )
    parser.add_argument(
        "--nova-reps",
        type=int,
        help="Nova repetitions, while under 2 s (default 5; quick 3)",
    )
    parser.add_argument(
        "--nova-timeout",
        type=float,
        help="seconds per Nova call before it is killed (default 10; quick 3)",
    )
    parser.add_argument("--no-nova", action="store_true")
    parser.add_argument(
        "--hosts",
        default=",".join(scenarios.HOSTS),
        help="comma-separated, of " + ", ".join(scenarios.HOSTS),
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(scenarios.SCENARIOS),
        help="comma-separated, of "
        + ", ".join(scenarios.SCENARIOS + scenarios.EXTRA_SCENARIOS),
    )
    parser.add_argument(
        "--guest-cells",
        default=",".join(map(str, scenarios.GUEST_CELLS)),
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    args.reps = args.reps or (5 if args.quick else 20)
    args.nova_reps = args.nova_reps or (3 if args.quick else 5)
    args.nova_timeout = args.nova_timeout or (3.0 if args.quick else 10.0)
    args.hosts = args.hosts.split(",")
    args.scenarios = args.scenarios.split(",")
    args.guest_cells = [int(k) for k in args.guest_cells.split(",")]
    for host in args.hosts:
        if host not in scenarios.HOSTS:
            parser.error(f"unknown host {host!r}")
    for name in args.scenarios:
        if name not in scenarios.SCENARIOS + scenarios.EXTRA_SCENARIOS:
            parser.error(f"unknown scenario {name!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    missing = None if args.no_nova else nova_missing()
    worker = None if args.no_nova or missing else NovaWorker()
    print(
        f"ours: {args.reps} repetitions (3 when a call takes > 200 ms); "
        + (
            "Nova: not run (--no-nova)"
            if args.no_nova
            else f"Nova: not importable ({missing})"
            if missing
            else f"Nova 'numa_fit_instance_to_host': up to "
            f"{args.nova_reps} repetitions, killed after "
            f"{args.nova_timeout:g} s"
        )
    )
    for host in args.hosts:
        if host in scenarios.HOST_NOTES:
            print(f"host {host}: {scenarios.HOST_NOTES[host]}")
    print(
        "times in ms; ours/nova: ratio of medians in this run (< 1: ours "
        "is faster); agree: same outcome, and the same host cells when "
        "both fit (cells: different ones); n/a: Nova timed out\n"
    )
    header = row_text([name for name, _ in COLUMNS])
    print(header)
    print("-" * len(header))
    all_problems, notes, records = [], [], []
    started = time.monotonic()
    try:
        for host in args.hosts:
            for name in args.scenarios:
                for k in args.guest_cells:
                    case = scenarios.build_case(name, host, k)
                    kwargs = scenarios.to_ours(case)
                    times, result = time_ours(kwargs, args.reps)
                    nova = None
                    if worker is not None:
                        nova = worker.run(
                            case, args.nova_reps, args.nova_timeout
                        )
                    values, problems, record = compare(
                        case, kwargs, times, result, nova, args.nova_timeout
                    )
                    records.append(record)
                    print(row_text(values), flush=True)
                    where = f"{name} host={host} guest={k}"
                    all_problems += [f"{where}: {p}" for p in problems]
                    notes += [f"{where}: {n}" for n in case["notes"]]
    finally:
        if worker is not None:
            worker.stop()
    print(f"\n{len(records)} cases in {time.monotonic() - started:.0f} s")
    if notes:
        print("\nnotes:")
        for note in notes:
            print(f"  {note}")
    print("\nproblems:" if all_problems else "\nproblems: none")
    for problem in all_problems:
        print(f"  {problem}")
    slow = [r for r in records if r["ours_median_ms"] > GOAL_MS]
    behind = [r for r in records if (r["ratio"] or 0) > 1]
    print(
        f"goal (every median < {GOAL_MS:g} ms): "
        + ("met" if not slow else f"MISSED in {len(slow)} case(s)")
        + "; never slower than Nova: "
        + (
            "not measured"
            if all(r["ratio"] is None for r in records)
            else "met"
            if not behind
            else f"MISSED in {len(behind)} case(s)"
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    print(worst_line(records))
    return 1 if all_problems else 0


if __name__ == "__main__":
    sys.exit(main())
