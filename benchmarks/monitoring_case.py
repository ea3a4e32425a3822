"""The benchmark's `monitoring_overhead` row: one month through `taxi_etl` with per-task metrics and without.

The hooks are attached when the flows are imported (`TAXI_TASK_METRICS`, `tasks/observe/metrics.py`), so the two
variants
run in fresh processes, alternately: each process runs the flow once to warm up, then `--runs` timed times, and
prints its samples. "With" includes everything the mechanism does: the task hooks, their log lines, the flow
hooks, the artifact, the log lines and the month events. The details add what one task run's hooks cost, timed
in-process on a task that does nothing, so that cost is seen apart from a month's run-to-run noise.

    python -m benchmarks.monitoring_case --metrics on --source PATH --month YYYY-MM --output DIR   # one process
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from benchmarks.harness import Size, months_on_disk
from tasks.observe.measure import Result, interleaved_timings, run_child, spread, timings

VARIANTS = {"with": "on", "without": "off"}
RUNS_PER_PROCESS = 2
TARGET_RATIO = 1.03


def monitoring_overhead_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, 1)
    uri = source.format(service="yellow", month=months[0])
    processes = size.monitoring_processes or size.repeats
    runs = max(RUNS_PER_PROCESS, -(-size.repeats // processes))  # at least `repeats` samples per variant
    samples: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(processes):
        for variant, switch in VARIANTS.items():
            arguments = ["--metrics", switch, "--source", uri, "--month", months[0], "--runs", str(runs)]
            measured = run_child(__name__, *arguments, "--output", str(workdir / f"monitoring-{switch}"))
            samples[variant] += measured["seconds"]
    result = Result.from_repeats(
        "monitoring_overhead",
        f"seconds for one month through taxi_etl: with per-task metrics vs without ({runs} runs in each of"
        f" {processes} fresh process{'es' if processes > 1 else ''} per variant, alternating; a cost: lower is better)",
        samples["with"],
        samples["without"],
        size.rows,
        lesson="flows/monitoring.py",  # lesson 7 teaches the mechanism this row measures
        target=f"with metrics <= {TARGET_RATIO:g}x without",
        details=[hook_cost(size.repeats)],
    )
    result.met = result.ratio <= TARGET_RATIO
    return [result]


def hook_cost(repeats: int, calls: int = 50) -> dict[str, object]:
    """Seconds per call of a task that does nothing, with and without the metrics hooks, in one flow run."""
    from prefect import flow, task

    from tasks.observe.metrics import metered

    def nothing() -> None:
        return None

    plain, measured = task(nothing, name="nothing"), metered(task(nothing, name="nothing-metered"))

    @flow(name="bench-hook-cost")
    def time_calls() -> dict[str, list[float]]:
        works = {
            "plain": lambda: [plain() for _ in range(calls)],
            "metered": lambda: [measured() for _ in range(calls)],
        }
        return interleaved_timings(works, repeats)

    per_call = {label: [seconds / calls for seconds in runs] for label, runs in time_calls().items()}
    added = [with_hooks - without for with_hooks, without in zip(per_call["metered"], per_call["plain"], strict=True)]
    return {
        "task call s, no hooks": spread(per_call["plain"]),
        "task call s, metered": spread(per_call["metered"]),
        "added s per task run": {"median": statistics.median(added), "min": min(added), "max": max(added)},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.monitoring_case", description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", choices=("on", "off"), required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--month", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--runs", type=int, default=RUNS_PER_PROCESS)
    args = parser.parse_args(argv)
    os.environ["TAXI_TASK_METRICS"] = "1" if args.metrics == "on" else "0"  # before the flows are imported
    from flows.etl import taxi_etl

    def run() -> None:
        taxi_etl(months=[args.month], source=args.source, output=args.output)

    samples = timings(run, 1 + args.runs)[1:]  # the first run warms up (imports, first API calls)
    print(json.dumps({"metrics": args.metrics, "seconds": samples}))


if __name__ == "__main__":
    main()
