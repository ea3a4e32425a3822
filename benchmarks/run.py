"""Measure every optimization against its baseline, side by side in one run, on generated data.

    python -m benchmarks.run            # 3,000,000-row months (make bench)
    python -m benchmarks.run --quick    # small months, to check the machinery (make bench-quick)

Writes `benchmarks/results.json`, `benchmarks/results.md` and `benchmarks/results.png` (and, for a full run into
`benchmarks/`, the README's block). Every figure in them comes from this run, as the median of at least 3
repeats with their range; the targets are checked, and a missed one is reported as missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import prefect
from rich.console import Console

from benchmarks import cases, harness
from benchmarks.report import update_readme, write_chart, write_markdown
from benchmarks.scale import scale_case
from benchmarks.scale_chart import SCALE_CHART, write_scale_chart
from tasks.observe.measure import Result

OUT_DIR = Path(__file__).resolve().parent
console = Console(stderr=True)
CASES = [*cases.CASES, ("scale", scale_case)]  # scale last: it has the machine to itself for minutes


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "prefect": prefect.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny months: checks the machinery (figures mean little)")
    parser.add_argument("--rows", type=int, help="rows per month (default 3,000,000; --quick 20,000)")
    parser.add_argument("--repeats", type=int, help="times each variant is measured (default 3, the minimum)")
    names = [name for name, _ in CASES]
    parser.add_argument("--only", action="append", choices=names, help="run only this case (repeatable)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where to write results.json/.md/.png")
    args = parser.parse_args(argv)
    size = harness.Size.quick() if args.quick else harness.Size.full()
    if args.rows:
        size.rows = args.rows
    if args.repeats:
        size.repeats = max(args.repeats, 3)
    workdir = Path(tempfile.mkdtemp(prefix="taxi-bench-"))
    started = time.perf_counter()
    results: list[Result] = []
    try:
        with harness.prefect_server(workdir):
            for name, run_case in CASES:
                if args.only and name not in args.only:
                    continue
                console.log(f"[bold]{name}[/]: running")
                measured = run_case(size, workdir)
                for result in measured:
                    console.log(
                        f"  {result.name}: {result.baseline:.4g} -> {result.optimized:.4g} {result.unit}"
                        f" ({result.ratio:.2f}x, medians of {len(result.baseline_repeats)})"
                        f" {'met' if result.met else 'MISSED' if result.met is False else ''}"
                    )
                results.extend(measured)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    document = {
        "machine": machine(),
        "rows_per_month": size.rows,
        "repeats": size.repeats,
        "quick": args.quick,
        "only": args.only or [],
        "seconds": round(time.perf_counter() - started, 1),
        "results": [result.to_dict() for result in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    write_markdown(document, args.out / "results.md")
    write_chart(document, args.out / "results.png")
    charts = "results.png" + (f", {SCALE_CHART}" if write_scale_chart(document, args.out / SCALE_CHART) else "")
    if not args.quick and not args.only and args.out == OUT_DIR:
        update_readme(document, OUT_DIR.parent / "README.md")
    console.log(f"wrote {args.out}/results.json, results.md, {charts} in {document['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
