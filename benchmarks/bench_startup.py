"""CLI start-up: each subcommand as a fresh process, vs ``python -c pass``.

An operator waits for the whole process, imports included, so each
command is timed from outside (wall clock around ``subprocess.run``, and
the child's user+system CPU from ``getrusage``, which the other load on a
shared machine disturbs less).  Every tree given with ``--tree`` (e.g.
main and a worktree) runs the same commands, all interleaved round by
round with the two baselines (``python -c pass`` and ``python -c "import
nova_slices"``), so drift hits every column alike.  Printed per command
and tree: min and median wall and CPU seconds, and the median minus
``python -c pass``: the start-up the command itself costs.

    python benchmarks/bench_startup.py [--runs N] [--tree DIR ...]
        [--bytecode]

The host of ``topology`` and ``fit`` is the 512-CPU two-socket host of
``tests/hostgen.py`` written to a file; ``validate`` and ``flavor-specs``
run on the embedded default (the shipped 8-GPU bundle in libvirt's test
driver), in a temporary state directory.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAVOR = ["--vcpus", "16", "--memory-mb", "16384"]
DEDICATED = ["--extra-spec", "hw:cpu_policy=dedicated"]


def commands(host):
    """``{name: argv after nova-slices}``; the goal is < 0.3 s for the
    first four."""
    return {
        "--help": ["--help"],
        "topology": ["topology", "--capabilities-xml", host],
        "fit": ["fit", *FLAVOR, *DEDICATED, "--capabilities-xml", host],
        "request": ["request", *FLAVOR, *DEDICATED],
        "topology-json": [
            "topology",
            "--format",
            "json",
            "--capabilities-xml",
            host,
        ],
        "flavor-specs": ["flavor-specs"],
        "validate": ["validate"],
    }


def run_once(argv, env, cwd):
    """(wall seconds, child CPU seconds, exit status) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        env=env,
        # not a checkout: ``-m`` puts the working directory first on
        # sys.path, which would shadow the tree under test
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (
        after.ru_stime - before.ru_stime
    )
    return wall, cpu, proc.returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="DIR",
        help="a checkout whose nova_slices to time (repeatable; default "
        "this one); the first is the reference of the ratio column",
    )
    parser.add_argument(
        "--only", action="append", default=[], help="command name(s)"
    )
    parser.add_argument(
        "--bytecode",
        action="store_true",
        help="let the children cache bytecode, as an installed package "
        "has it (in a temporary PYTHONPYCACHEPREFIX, written by the warm-up "
        "round; no tree is touched); without it a PYTHONDONTWRITEBYTECODE "
        "environment compiles every source module of the tree each run",
    )
    args = parser.parse_args()
    trees = [os.path.abspath(t) for t in args.tree] or [HERE]
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, HERE)
        from tests import hostgen

        host = os.path.join(tmp, "two_socket_512.xml")
        with open(host, "w") as f:
            f.write(hostgen.two_socket_512_threads())
        cmds = commands(host)
        if args.only:
            cmds = {k: v for k, v in cmds.items() if k in args.only}
        py = sys.executable
        jobs = [("python -c pass", None, [py, "-c", "pass"])]
        for tree in trees:
            jobs.append(
                ("import nova_slices", tree, [py, "-c", "import nova_slices"])
            )
            for name, argv in cmds.items():
                full = [
                    py,
                    "-m",
                    "nova_slices.cmd.main",
                    "--state-path",
                    os.path.join(tmp, "state"),
                    *argv,
                ]
                jobs.append((name, tree, full))
        samples = {i: [] for i in range(len(jobs))}
        for _round in range(args.runs + 1):  # the first round warms up
            for i, (_name, tree, argv) in enumerate(jobs):
                env = dict(os.environ, HOME=tmp)
                env.pop("PYTHONPATH", None)
                if args.bytecode:
                    env.pop("PYTHONDONTWRITEBYTECODE", None)
                    env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pyc")
                if tree is not None:
                    env["PYTHONPATH"] = tree
                wall, cpu, status = run_once(argv, env, tmp)
                if status not in (0, 1):
                    sys.exit(f"{argv} ({tree}) exited {status}")
                if _round:
                    samples[i].append((wall, cpu))
    base_wall = statistics.median(w for w, _ in samples[0])
    base_cpu = statistics.median(c for _, c in samples[0])
    print(
        f"{args.runs} runs each, interleaved; seconds; bytecode "
        f"{'cached' if args.bytecode else 'as the environment says'}; "
        f"python -c pass: wall {base_wall:.3f}, cpu {base_cpu:.3f}"
    )
    header = (
        f"{'command':<20} {'tree':<16} {'wall min':>8} {'wall med':>8} "
        f"{'cpu med':>8} {'-pass wall':>10} {'-pass cpu':>9} {'vs 1st':>7}"
    )
    print(header)
    print("-" * len(header))
    ref = {}
    for i, (name, tree, _argv) in enumerate(jobs):
        walls = [w for w, _ in samples[i]]
        cpus = [c for _, c in samples[i]]
        med, cmed = statistics.median(walls), statistics.median(cpus)
        label = "-" if tree is None else os.path.basename(tree)
        ratio = ""
        if tree is not None:
            ref.setdefault(name, med - base_wall)
            # a few ms over ``python -c pass`` is noise: no ratio of noise
            if ref[name] > 0.005:
                ratio = f"{(med - base_wall) / ref[name]:.2f}"
        print(
            f"{name:<20} {label:<16} {min(walls):8.3f} {med:8.3f} "
            f"{cmed:8.3f} {med - base_wall:10.3f} {cmed - base_cpu:9.3f} "
            f"{ratio:>7}"
        )


if __name__ == "__main__":
    main()
