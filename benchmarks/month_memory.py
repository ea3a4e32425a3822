"""Peak memory of one streamed month at two sizes: is the polars plan bounded by itself or by the month?

    python -m benchmarks.month_memory                        # 3M and 12M rows, each variant, 2 interleaved repeats
    python -m benchmarks.month_memory --rows 3000000 --repeats 3 --variant project

Each measurement is `tasks.pipeline.month.run_month` (the polars engine: the plans run on the file's batches into two
local parquet files, then committed to the lake's Delta tables as written) on a generated yellow month, in a fresh
process, which prints its own peak RSS (`VmHWM`), wall and CPU seconds, and the seconds of the month's two Delta commits
(inside `tasks.lake.tables._commit_month`, placing the file and committing it, timed in the same run): the commit should
stay small next to the month. A process's high-water mark never goes down, so every sample needs its own process.
Variants differ only in environment variables, read by polars or by its allocator when they start: that is how one
variable at a time is isolated. Rounds interleave the variants and sizes, so a busy machine's drift hits all of them; on
a shared machine trust the memory figures and CPU seconds over wall seconds.

The issue's targets: a 3M-row month <= 600 MiB, and a 12M-row month <= 1.15x the 3M-row peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tasks.observe.peak_memory import peak_rss_bytes

DEFAULT_ROWS = (3_000_000, 12_000_000)
MONTH = "2024-03"  # holds a DST change, so the plan's offset lookups run too
TARGET_MIB, TARGET_GROWTH = 600, 1.15

# polars' own jemalloc reads this once, when polars is imported, after the settings polars gives it (freed pages kept
# for 0.5-1 s); later options win. Returning pages at once lowered the peak (3M rows: 535-580 MiB against 628-688)
# for about 60% more CPU time, so the project leaves polars' settings alone and this measures the trade.
ALLOCATOR_SETTINGS_VARIABLE = "_RJEM_MALLOC_CONF"

# Environment overrides per variant; `project` is what every run of the pipeline gets.
VARIANTS: dict[str, dict[str, str]] = {
    "project": {},
    "allocator returns pages at once": {ALLOCATOR_SETTINGS_VARIABLE: "dirty_decay_ms:0,muzzy_decay_ms:0"},
    "one polars thread": {"POLARS_MAX_THREADS": "1"},
}


def timed_commits() -> list[float]:
    """Time every Delta commit of a month from now on in this process: wraps the lake's one commit function, so
    the seconds are the commits' own, measured beside the month's (one entry per commit, quarantine then trips)."""
    from tasks.lake import tables

    seconds: list[float] = []
    commit = tables._commit_month

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return commit(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    tables._commit_month = timed
    return seconds


def measure_month(source: str) -> dict[str, float]:
    """Run one month with the polars engine into a temporary lake; this process's figures (child side)."""
    from tasks.months import Month
    from tasks.pipeline.month import run_month
    from tasks.pipeline.zones import load_zone_table

    zones = load_zone_table()
    commits = timed_commits()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="month-memory-") as root:
        summary = run_month(source, "yellow", Month.parse(MONTH), root, zones, "polars")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rows": summary.rows_in,
        "peak_rss_mib": round(peak_rss_bytes() / 2**20, 1),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime - usage_before.ru_utime - usage_before.ru_stime, 2),
        "commit_seconds": round(sum(commits), 3),
    }


def measure_in_child(source: str, overrides: dict[str, str]) -> dict[str, float]:
    """`measure_month` in a fresh process whose environment has `overrides` applied."""
    environment = {**os.environ, **overrides}
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.month_memory", "--child", source],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"month_memory child failed on {source}:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def month_file(rows: int, data_dir: Path) -> str:
    """A generated yellow month of `rows` rows (written once, then reused)."""
    from data.generate import MonthFile, is_present, write_month
    from tasks.months import Month

    folder = data_dir / f"rows-{rows}"
    target = MonthFile("yellow", Month.parse(MONTH), rows, folder)
    if not is_present(target):
        write_month("yellow", target.month, rows, folder)
    return str(target.path)


def report(samples: dict[tuple[str, int], list[dict[str, float]]], sizes: list[int]) -> str:
    """A markdown table: per variant and size, median peak RSS (range), wall and CPU seconds, the commits' seconds
    and their share of the wall time; growth and targets."""
    lines = [
        "| variant | rows | peak RSS MiB (median, range) | wall s | CPU s | commit s (share) | growth vs smallest "
        "| targets |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for variant in dict.fromkeys(name for name, _ in samples):
        smallest = statistics.median(s["peak_rss_mib"] for s in samples[(variant, sizes[0])])
        for rows in sizes:
            runs = samples[(variant, rows)]
            peaks = [s["peak_rss_mib"] for s in runs]
            peak = statistics.median(peaks)
            growth = peak / smallest
            if rows == sizes[0]:
                met = f"<= {TARGET_MIB} MiB: {'yes' if peak <= TARGET_MIB else 'no'}"
            else:
                met = f"<= {TARGET_GROWTH}x: {'yes' if growth <= TARGET_GROWTH else 'no'}"
            wall = statistics.median(s["wall_seconds"] for s in runs)
            cpu = statistics.median(s["cpu_seconds"] for s in runs)
            commit = statistics.median(s["commit_seconds"] for s in runs)
            lines.append(
                f"| {variant} | {rows:,} | {peak:.0f} ({min(peaks):.0f}-{max(peaks):.0f}) | {wall:.1f} | {cpu:.1f} "
                f"| {commit:.3f} ({commit / wall:.1%}) | {growth:.2f}x | {met} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.month_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per month, repeatable (default: 3M and 12M)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds (default: 2)")
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="repeatable (default: all)")
    parser.add_argument("--data", type=Path, default=Path("data/generated/month-memory"), help="generated months")
    parser.add_argument("--child", metavar="SOURCE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_month(args.child)))
        return 0
    sizes = sorted(args.rows or DEFAULT_ROWS)
    variants = args.variant or list(VARIANTS)
    sources = {rows: month_file(rows, args.data) for rows in sizes}
    samples: dict[tuple[str, int], list[dict[str, float]]] = {(v, rows): [] for v in variants for rows in sizes}
    for round_number in range(args.repeats):
        for variant in variants:
            for rows in sizes:
                sample = measure_in_child(sources[rows], VARIANTS[variant])
                samples[(variant, rows)].append(sample)
                print(json.dumps({"round": round_number, "variant": variant, **sample}), flush=True)
    print(report(samples, sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
