"""Our NUMA fitter against Nova's, on many seeded random cases.

Not a test (tests/unit/test_fit_vs_nova.py runs a few thousand cases in
the suite): it prints figures.  Every case goes to both fits
(tests/novafit.py); each outcome is counted by kind -- both fit, both
refuse, only ours fits, only Nova's fits, Nova's own per-cell check
refuses a cell we chose -- and every disagreement by the classes that
explain it.  Unexplained disagreements are printed as JSON, one a line,
and make the exit status 1.

    .venv/bin/python tools/fit_vs_nova.py [--cases 40000] [--seed 15]
"""

import argparse
import json
import os
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

warnings.simplefilter("ignore")

from tests import novafit  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=40000)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    start = time.monotonic()
    counts, unexplained = novafit.run_cases(args.cases, args.seed)
    elapsed = time.monotonic() - start
    by_kind = {}
    for (kind, _), n in counts.items():
        by_kind[kind] = by_kind.get(kind, 0) + n
    print(f"{args.cases} cases (seed {args.seed}) in {elapsed:.0f} s")
    for kind in sorted(by_kind):
        print(f"  {kind:14} {by_kind[kind]:7}")
    print("disagreements by class:")
    classes = {c.name: c for c in novafit.CLASSES}
    for (kind, labels), n in sorted(counts.items()):
        if kind in ("skipped", "agree-fit", "agree-no-fit"):
            continue
        names = []
        for label in labels:
            cls = classes[label]
            tag = cls.kind + (f" LP#{cls.tracker}" if cls.tracker else "")
            names.append(f"{label} ({tag})")
        shown = " + ".join(names) or "UNEXPLAINED"
        print(f"  {kind:14} {n:7}  {shown}")
    for result in unexplained:
        print(
            json.dumps(
                {
                    "kind": result.kind,
                    "detail": result.detail,
                    "case": result.case,
                }
            )
        )
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
