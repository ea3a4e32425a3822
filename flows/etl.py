"""`taxi_etl`: extract -> normalize -> validate -> transform -> load, for one service and one or more months.

This is the pipeline every lesson reuses. Months run one after another and tasks pass Arrow tables in memory;
the lessons show what changes when results are persisted, cached, compressed, passed as paths or spread over
Dask. The data tasks use `cache_policy=NO_CACHE`: Prefect's default policy hashes every argument to build a
cache key, which on a 3-million-row table costs more than the work itself (see `flows/quote.py`).

Run it:

    python -m flows.etl                                   # the committed synthetic sample, yellow and green
    python -m flows.etl --service green --month 2025-01   # TLC's official file (needs the internet)
    python -m flows.etl --source ../shared/data/tlc/green_tripdata_2023-01.parquet
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from prefect import Task, flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from tasks import settings
from tasks.extract import extract
from tasks.load import load
from tasks.months import Month
from tasks.plan import plan_run
from tasks.report import MonthSummary, RunSummary, publish_summary, render_markdown
from tasks.schema import NEW_YORK, normalize
from tasks.transform import transform
from tasks.validate import count_reasons, validate
from tasks.zones import ZoneTable, load_zones


def scheduled_time() -> datetime:
    """When this run was scheduled for (a deployment's schedule), else now: what `latest` is resolved against."""
    scheduled = flow_run.scheduled_start_time
    return scheduled.astimezone(ZoneInfo(NEW_YORK)).replace(tzinfo=None) if scheduled else datetime.now()


def for_month(step: Task, service: str, month: Month) -> Task:
    """`step` with its task runs named after their work (`extract-yellow-2025-01`), so the UI's run graph and Task
    Runs tab say which month each step belongs to."""
    return step.with_options(task_run_name=f"{step.name}-{service}-{month}")


def process_month(service: str, month: Month, source: str, root: str, zones: ZoneTable, engine: str) -> MonthSummary:
    """One month through every step, timing each; any failure stops before `load`, so nothing is written."""
    result = MonthSummary(service=service, month=str(month), source=source)
    with result.timed("extract"):
        raw = for_month(extract, service, month)(source)
    with result.timed("normalize"):
        table = for_month(normalize, service, month)(raw, service, source)
    with result.timed("validate"):
        clean, quarantine = for_month(validate, service, month)(table, month, zones.known_location_ids(), engine)
    with result.timed("transform"):
        trips = for_month(transform, service, month)(clean, zones.table, engine)
    with result.timed("load"):
        result.outputs = for_month(load, service, month)(trips, quarantine, root, service, month)
    result.rows_in, result.rows_clean, result.rows_quarantined = (
        table.num_rows,
        trips.num_rows,
        quarantine.num_rows,
    )
    result.quarantined_by_reason = count_reasons(quarantine)
    return result


@flow(name="taxi_etl")
def taxi_etl(
    service: Literal["yellow", "green"] = "yellow",
    months: list[str] | None = None,
    source: str | None = None,
    output: str | None = None,
    engine: Literal["polars", "pandas"] = "polars",
    zones: str | None = None,
) -> dict | State:
    """Process `months` of `service` trips from `source` into clean and quarantined partitions under `output`.

    With neither months nor source it runs on the committed sample; with months only, on TLC's official files.
    A month may be `latest`: the newest month TLC has published when the run was scheduled (for schedules).
    `source` may be one file or a template with `{service}`, `{month}`, `{year}`, `{mm}`; `output` a folder or an
    `s3://` prefix (default `TAXI_OUTPUT_ROOT` or `./output`; for the sample, `./output/sample`, so synthetic months
    never land in the lake); `zones` a zone-table CSV, or `tlc` to download TLC's current one (default: TLC's table
    shipped in `data/`).

    Months run in order; the first that fails ends the run as Failed with the month and the error as its message
    (months before it stay written). The summary artifact is published either way.
    """
    logger = get_run_logger()
    started = time.perf_counter()
    plan = plan_run(service, months, source, now=scheduled_time())
    root = output or (settings.SAMPLE_OUTPUT_ROOT if uses_sample(months, source) else settings.output_root())
    zone_table = load_zones(zones)
    summary = RunSummary(service=service, engine=engine, output_root=root, zones_origin=zone_table.origin)
    if plan.latest:
        summary.latest = plan.latest.describe()
    for month, month_source in plan.months:
        logger.info("%s %s: reading %s", service, month, month_source)
        try:
            done = process_month(service, month, month_source, root, zone_table, engine)
        except Exception as error:  # the failed task run has logged the traceback; the month wrote nothing
            summary.failure = f"{service} {month}: {type(error).__name__}: {error}"
            break
        summary.months.append(done)
        logger.info(
            "%s %s: %s rows in, %s clean, %s quarantined %s",
            service,
            month,
            f"{done.rows_in:,}",
            f"{done.rows_clean:,}",
            f"{done.rows_quarantined:,}",
            done.quarantined_by_reason,
        )
    summary.seconds = round(time.perf_counter() - started, 2)
    publish_summary(summary)
    if summary.failure:
        # A Failed state, not a re-raised exception: the flow run fails with this message, and its log holds one
        # traceback for one error (the task's) instead of the same one twice.
        logger.error("Run failed at %s; months before it were written, later ones were not started", summary.failure)
        return Failed(message=summary.failure)
    return summary.to_dict()


def uses_sample(months: list[str] | None, source: str | None) -> bool:
    """True when the run reads the committed synthetic sample: its output then goes to the sample's own root."""
    return not months and not source


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.etl",
        description="Run the NYC taxi ETL. With no arguments: the committed synthetic sample, yellow and green.",
    )
    parser.add_argument(
        "--service",
        action="append",
        choices=settings.SERVICES,
        help="yellow or green; repeat for both (default: both for the sample, else from the file name, else yellow)",
    )
    parser.add_argument(
        "--month",
        action="append",
        dest="months",
        metavar="YYYY-MM",
        help="YYYY-MM, or latest (the newest month TLC has published); repeatable (default: the sample's months)",
    )
    parser.add_argument(
        "--source",
        metavar="PATH|URL",
        help="a local path, http(s):// or s3:// URL of a parquet/CSV(.gz) file, or a template with "
        "{service} and {month} (default: TLC's official file for each month)",
    )
    parser.add_argument(
        "--output",
        metavar="DIR|s3://...",
        help="output root (default: $TAXI_OUTPUT_ROOT or ./output; ./output/sample for the sample)",
    )
    parser.add_argument("--engine", choices=("polars", "pandas"), default="polars", help="dataframe engine")
    parser.add_argument(
        "--zones",
        metavar="CSV|tlc",
        help="zone table CSV, or tlc to download TLC's current one (default: TLC's table shipped in data/)",
    )
    return parser.parse_args(argv)


def default_services(args: argparse.Namespace) -> list[str]:
    """Both services for the sample; otherwise the one named in the source's file name, or yellow."""
    if args.service:
        return args.service
    if not args.months and not args.source:
        return list(settings.SERVICES)
    name = (args.source or "").rsplit("/", 1)[-1]
    return [next((s for s in settings.SERVICES if s in name), "yellow")]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for service in default_services(args):
        state = taxi_etl(
            service=service,
            months=args.months,
            source=args.source,
            output=args.output,
            engine=args.engine,
            zones=args.zones,
            return_state=True,
        )
        if not state.is_completed():
            print(f"error: {state.message}", file=sys.stderr)
            return 1
        summary = state.result()
        print(render_markdown(RunSummary(**{**summary, "months": [MonthSummary(**m) for m in summary["months"]]})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
