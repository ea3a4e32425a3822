"""Lesson 3, read and write data directly instead of passing results: tasks exchange paths, not frames.

What it does. Two flows compute the same report (trips per pickup borough per month) over several months:
- `months_in_memory`: each month's task returns its trips table, the flow holds them all, and a report task
  receives the list. Every month stays in the flow process's memory until the end.
- `months_via_paths`: each month's task writes its partition (`tasks.pipeline.month.etl_month`) and returns only its
  summary; the report task gets the lake's trips table (a path) and scans it lazily with polars (`scan_delta`),
  reading just the months and the two columns it needs. At most one month is in memory at a time, in the task
  that is processing it.

When it helps. Whenever the data is larger than you want in one process: peak memory stays at one month instead
of growing with the number of months (`disk_io` in `benchmarks/results.md`), results need no serializer, and
the files are there for the next flow, a notebook, or a retry. With `s3://` paths it works across machines.

What it costs. Storage, and an extra read when the next step needs the data. You manage the files (this project
keeps them as the output dataset anyway); Prefect's UI shows paths, not data. With `s3://` paths, polars needs its
own spelling of the endpoint (`aws_endpoint_url`; `settings.polars_storage_options`), not fsspec's.

Where it writes. `output`, else `output/lessons/disk-io/` (`settings.lesson_output_root`): never the lake.

What you see. Each variant publishes a table artifact (`lesson-disk-io` for paths, `lesson-disk-io-in-memory`)
with its months, trips, seconds and the flow process's peak memory so far, and logs the same row. Peak memory
only compares between fresh processes (a process's high-water mark never goes down), as `python -m flows.disk_io`
and the benchmark run them.

Run it: `python -m flows.disk_io` (each variant in a fresh process on the sample; prints their peak memory).

Course page: `docs/lessons/disk-io.md` (`make docs` builds the site).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import polars as pl
import pyarrow as pa
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from tasks import settings
from tasks.months import Month
from tasks.observe.lesson_report import publish_lesson_table
from tasks.observe.measure import peak_rss_mb, run_child
from tasks.observe.metrics import metered
from tasks.observe.metrics_publish import monitored
from tasks.pipeline.month import etl_month, read_month_in_memory
from tasks.pipeline.plan import sample_plan
from tasks.pipeline.zones import ZoneTable, load_zones


@metered
@task(name="trips-in-memory", cache_policy=NO_CACHE)
def trips_in_memory(source: str, service: str, month: Month, zones: ZoneTable, engine: str) -> pa.Table:
    """The month's clean trips, returned to the flow as an in-memory result (the same steps as `run_month`)."""
    _, trips, _ = read_month_in_memory(source, service, month, zones, engine)
    return trips


@metered
@task(name="report-from-tables", cache_policy=NO_CACHE)
def report_from_tables(tables: list[pa.Table]) -> list[dict]:
    frames = [pl.from_arrow(t.select(["pickup_date", "pu_borough"])) for t in tables]
    return borough_report(pl.concat(frames).lazy())


@metered
@task(name="report-from-paths", cache_policy=NO_CACHE)
def report_from_paths(table: str, service: str, months: list[str]) -> list[dict]:
    """The report from the lake's trips table (a Delta table: `scan_delta`, not `scan_parquet`, which would also
    read replaced versions' files), only the months asked for: polars prunes the other months' files."""
    trips = pl.scan_delta(table, storage_options=settings.delta_storage_options(table))
    wanted = [Month.parse(m) for m in months]
    in_months = pl.any_horizontal((pl.col("year") == m.year) & (pl.col("month") == m.month) for m in wanted)
    return borough_report(trips.filter(pl.col("service") == service, in_months))


def borough_report(trips: pl.LazyFrame) -> list[dict]:
    """Trips per month and pickup borough, sorted: the same computation whichever way the data arrives."""
    month = pl.col("pickup_date").dt.strftime("%Y-%m").alias("month")
    report = trips.group_by(month, "pu_borough").agg(trips=pl.len()).sort("month", "pu_borough")
    return report.collect().to_dicts()


def publish_variant(key: str, variant: str, months: int, report: list[dict], started: float) -> None:
    """The variant's measured effect, as the artifact `key` and a log line."""
    row = {
        "variant": variant,
        "months": months,
        "trips": sum(r["trips"] for r in report),
        "seconds": round(time.perf_counter() - started, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    publish_lesson_table(
        key, [row], f"{variant}: trips per pickup borough over {months} month(s) (full size: benchmarks/results.md)"
    )


@monitored
@flow(name="lesson-disk-io-in-memory")
def months_in_memory(
    service: str = "yellow",
    months: list[str] | None = None,
    source: str = settings.SAMPLE_SOURCE,
    engine: str = "polars",
) -> list[dict]:
    """The baseline: every month's trips come back to the flow as results, and the report gets them all."""
    started, zones, plan = time.perf_counter(), load_zones(), sample_plan(service, months, source)
    tables = [trips_in_memory(uri, service, month, zones, engine) for month, uri in plan]
    report = report_from_tables(tables)
    publish_variant("lesson-disk-io-in-memory", "in-memory results", len(plan), report, started)
    return report


@monitored
@flow(name="lesson-disk-io")
def months_via_paths(
    service: str = "yellow",
    months: list[str] | None = None,
    source: str = settings.SAMPLE_SOURCE,
    engine: str = "polars",
    output: str | None = None,
) -> list[dict]:
    """The lesson: each month is written where it belongs and only its path comes back; the report reads them."""
    started, zones, plan = time.perf_counter(), load_zones(), sample_plan(service, months, source)
    root = output or settings.lesson_output_root("disk-io")
    summaries = [etl_month(uri, service, month, root, zones, engine) for month, uri in plan]
    report = report_from_paths(summaries[0].outputs["trips"], service, [summary.month for summary in summaries])
    publish_variant("lesson-disk-io", "paths", len(plan), report, started)
    return report


def compare_in_fresh_processes(months: list[str], source: str, output: str, engine: str = "polars") -> dict:
    """Run each variant in its own process (peak memory only compares between fresh processes)."""
    common = ["--source", source, "--output", output, "--engine", engine, *[a for m in months for a in ("--month", m)]]
    return {variant: run_child("flows.disk_io", "--variant", variant, *common) for variant in ("memory", "paths")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.disk_io", description="Lesson: paths instead of results")
    parser.add_argument("--variant", choices=("memory", "paths"), help="run one variant here and print JSON")
    parser.add_argument("--month", action="append", dest="months")
    parser.add_argument("--source", default=settings.SAMPLE_SOURCE, help="a template with {service} and {month}")
    parser.add_argument("--output", default=None)
    parser.add_argument("--engine", default="polars")
    args = parser.parse_args(argv)
    if args.variant:
        run = {"memory": months_in_memory, "paths": months_via_paths}[args.variant]
        extra = {"output": args.output} if args.variant == "paths" else {}
        report = run(months=args.months, source=args.source, engine=args.engine, **extra)
        print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1), "report": report}))
        return
    output = args.output or tempfile.mkdtemp(prefix="lesson-disk-io-")
    both = compare_in_fresh_processes(args.months or list(settings.SAMPLE_MONTHS), args.source, output, args.engine)
    if both["memory"]["report"] != both["paths"]["report"]:
        raise RuntimeError("the two variants computed different reports: the lesson's comparison is void")
    for variant, outcome in both.items():
        print(f"{variant:7} peak RSS of the flow process: {outcome['peak_rss_mb']:8.1f} MB")


if __name__ == "__main__":
    main()
