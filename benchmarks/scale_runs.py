"""The processes the scale section measures, one fresh process per measurement (a peak RSS is only comparable
between fresh processes: a process's high-water mark never goes down).

    python -m benchmarks.scale_runs bare --source T --months 2024-01,2024-02 --output DIR [--barrier DIR --parties 2]
    python -m benchmarks.scale_runs etl --source T --months 2024-01,2024-02 --output DIR [--runner dask ...]

`bare` runs the months one after another through the polars plan itself (`run_month`), without Prefect;
`etl` runs them through the `taxi_etl` flow on the runner asked. Either prints one JSON line: the wall seconds of
the work (imports excluded, as they are for both), its start and end on the wall clock, the rows read and the
process's peak RSS in MiB. Several `bare` processes that share a `--barrier` folder start their work together,
so a slow import in one does not count as parallel work in the other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tasks.observe.measure import peak_rss_mib


def wait_for_parties(barrier: Path, parties: int) -> None:
    """Mark this process ready in `barrier`, then wait until `parties` processes are."""
    barrier.mkdir(parents=True, exist_ok=True)
    (barrier / f"{os.getpid()}.ready").touch()
    while len(list(barrier.glob("*.ready"))) < parties:
        time.sleep(0.01)


def run_bare(source: str, months: list[str], output: str) -> int:
    """The months through `run_month` (the polars plan and the Delta commit, no Prefect run), one after another;
    the rows read."""
    from tasks.months import Month
    from tasks.pipeline.month import run_month
    from tasks.pipeline.zones import load_zone_table

    zones = load_zone_table()
    rows = 0
    for month in months:
        uri = source.format(service="yellow", month=month)
        rows += run_month(uri, "yellow", Month.parse(month), output, zones, "polars").rows_in
    return rows


def run_etl(source: str, months: list[str], output: str, engine: str, runner: str, dask_address: str | None) -> int:
    """The months through `taxi_etl`; the rows read. Raises if the flow run did not complete."""
    from flows.etl import taxi_etl_on

    summary = taxi_etl_on(runner, dask_address)(
        service="yellow", months=months, source=source, output=output, engine=engine
    )
    return sum(month["rows_in"] for month in summary["months"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_runs", description=__doc__.splitlines()[0])
    parser.add_argument("how", choices=("bare", "etl"))
    parser.add_argument("--source", required=True, help="a template with {service} and {month}")
    parser.add_argument("--months", required=True, help="comma-separated YYYY-MM")
    parser.add_argument("--output", required=True)
    parser.add_argument("--engine", choices=("polars", "pandas"), default="polars")
    parser.add_argument("--runner", choices=("threads", "dask"), default="threads")
    parser.add_argument("--dask-address")
    parser.add_argument("--month-threads", type=int, help="TAXI_MONTH_THREADS for the threads runner")
    parser.add_argument("--barrier", type=Path, help="a folder shared with the processes to start with")
    parser.add_argument("--parties", type=int, default=1)
    args = parser.parse_args(argv)
    if args.month_threads:
        os.environ["TAXI_MONTH_THREADS"] = str(args.month_threads)
    months = args.months.split(",")
    if args.how == "bare":
        from tasks.pipeline.engines import polars_month  # noqa: F401 (imported before the clock starts, as taxi_etl is)

        work = lambda: run_bare(args.source, months, args.output)  # noqa: E731
    else:
        import flows.etl  # noqa: F401

        work = lambda: run_etl(args.source, months, args.output, args.engine, args.runner, args.dask_address)  # noqa: E731
    if args.barrier:
        wait_for_parties(args.barrier, args.parties)
    started_at, started = time.time(), time.perf_counter()
    rows = work()
    seconds = time.perf_counter() - started
    measured = {"seconds": seconds, "started": started_at, "finished": started_at + seconds, "rows": rows}
    print(json.dumps({**measured, "peak_rss_mib": peak_rss_mib()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
