"""`taxi_etl`: every month of a run through the pipeline, mapped over threads or a Dask cluster.

Each month is one task run of `tasks.pipeline.etl_month` (extract, normalize, validate, transform and load as one
plan), named after its work (`month-yellow-2025-01`): the UI shows a row per month, a month that fails on a
transient error retries alone, and what crosses between the flow and the month is small (a path in, a summary out).

Where the months run is chosen per run, with the same flow code:

- `runner="threads"` (default): a thread pool in the flow's process, `TAXI_MONTH_THREADS` months at once (2).
- `runner="dask"`: a Dask `LocalCluster` of two single-threaded worker processes started for the run.
- `dask_address="tcp://HOST:PORT"`: an existing Dask scheduler (`make dask` starts one and writes its address to
  `.run/dask.env` as `TAXI_DASK_ADDRESS`, the command line's default). Its workers must reach the same Prefect API
  (`PREFECT_API_URL`): their month task runs and logs then appear in the UI under this flow run.

On Dask, each month asks for one unit of the worker resource `MONTH` (`dask.annotate`), and the project's workers
declare one (`--resources MONTH=1`, or the LocalCluster's `resources`): a worker holds at most one heavy month at a
time, however many threads it has. Downloads from http(s) sources take a slot of the `taxi-tlc-downloads` rate
limit (`blocks/limits.py`) and writes hold the month's write limit (`tasks/write_lock.py`): both Prefect global
concurrency limits, so they hold across runs, processes and workers.

Run it:

    python -m flows.etl                                   # the committed synthetic sample, yellow and green
    python -m flows.etl --service green --month 2025-01   # TLC's official file (needs the internet)
    python -m flows.etl --source ../shared/data/tlc/green_tripdata_2023-01.parquet
    python -m flows.etl --runner dask                     # the sample on a LocalCluster
    make dask && . .run/dask.env && python -m flows.etl   # the sample on an existing scheduler

Course page: `docs/scale.md` (`make docs` builds the site).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.exceptions import MissingResult
from prefect.futures import PrefectFutureList
from prefect.runtime import flow_run
from prefect.states import Failed, State
from pydantic import SecretStr

from blocks.limits import download_slot
from flows.runners import (
    MonthsOutcome,
    month_task_runner,
    one_month_per_worker,
    publish_dask_links,
    retry_month_if_transient,
)
from tasks import settings
from tasks.metrics import current_run_rows
from tasks.metrics_publish import monitored
from tasks.months import Month
from tasks.output_check import check_output_root
from tasks.pipeline import etl_month
from tasks.plan import plan_run
from tasks.redact import SecretUrl, hide_url_credentials_in_logs, redact_text, redact_url, redacted_errors, reveal
from tasks.report import MonthSummary, RunSummary, publish_summary, render_markdown
from tasks.retries import network_retry_options
from tasks.schema import NEW_YORK
from tasks.zones import ZoneTable, load_zones

hide_url_credentials_in_logs()  # a source URL's credentials (presigned, user:password@) never reach a log record


def scheduled_time() -> datetime:
    """When this run was scheduled for (a deployment's schedule), else now: what `latest` is resolved against."""
    scheduled = flow_run.scheduled_start_time  # a pendulum DateTime: made a standard one before any arithmetic
    if not scheduled:
        return datetime.now()
    return datetime.fromtimestamp(scheduled.timestamp(), ZoneInfo(NEW_YORK)).replace(tzinfo=None)


@monitored
@flow(name="taxi-etl-months")
def etl_months(
    service: str,
    months: list[str],
    sources: list[SecretStr],
    root: str,
    engine: str,
    zones: str | None = None,
    allow_high_quarantine: bool = False,
) -> MonthsOutcome:
    """Load the zone table once and map `etl_month` over the planned months on this flow's task runner.

    Waits for every month: a month that failed (its task run logged the traceback) is reported by name and error
    in the outcome, and the months that succeeded stay written. `sources` come as `SecretUrl`s, so this run's
    stored parameters show them redacted; the months get the URLs themselves.
    """
    publish_dask_links()
    zone_table = load_zones(zones)
    chosen = [Month.parse(month) for month in months]
    outcome = MonthsOutcome(zones_origin=zone_table.origin)
    uris = [reveal(source) or "" for source in sources]
    futures = map_months(uris, service, chosen, root, zone_table, engine, allow_high_quarantine)
    for month, future in zip(chosen, futures, strict=True):
        future.wait()
        state = future.state
        if state.is_completed():
            outcome.done.append(state.result())
        else:
            outcome.failures.append(f"{service} {month}: {failure_reason(state)}")
    return outcome


def failure_reason(state: State) -> str:
    """`ErrorType: message` of a failed month. Its exception is normally in the state; on a busy machine the state
    was seen read back from the API without it (`MissingResult`), and then the state's own message says the same."""
    try:
        error = state.result(raise_on_failure=False)
    except MissingResult:
        return redact_text(state.message or "failed")
    return redact_text(f"{type(error).__name__}: {error}")


def map_months(
    sources: list[str],
    service: str,
    months: list[Month],
    root: str,
    zone_table: ZoneTable,
    engine: str,
    allow_high_quarantine: bool = False,
) -> PrefectFutureList:
    """One `etl_month` task run per month, named after it, retried alone on transient errors, one per Dask worker.

    This is `etl_month.map(...)` written out (`Task.map` submits one task run per item): a month read over http(s)
    first takes a slot of the download rate limit, so the months of a year on TLC start downloading at the
    limit's pace instead of all at once, and the others are not held up behind them.
    """
    month_task = etl_month.with_options(
        task_run_name="month-{service}-{month}",
        **{**network_retry_options(), "retry_condition_fn": retry_month_if_transient},
    )
    with one_month_per_worker():
        futures = []
        for month_source, month in zip(sources, months, strict=True):
            with download_slot(month_source):
                futures.append(
                    month_task.submit(month_source, service, month, root, zone_table, engine, allow_high_quarantine)
                )
    return PrefectFutureList(futures)


@monitored(always_publish=True, month_events=True, prometheus=True)
@flow(name="taxi_etl")
def taxi_etl(
    service: Literal["yellow", "green"] = "yellow",
    months: list[str] | None = None,
    source: str | SecretStr | None = None,
    output: str | None = None,
    engine: Literal["polars", "pandas"] = "polars",
    zones: str | None = None,
    runner: Literal["threads", "dask"] = "threads",
    dask_address: str | None = None,
    allow_high_quarantine: bool = False,
) -> dict | State:
    """Process `months` of `service` trips from `source` into clean and quarantined partitions under `output`.

    With neither months nor source it runs on the committed sample; with months only, on TLC's official files.
    A month may be `latest`: the newest month TLC has published when the run was scheduled (for schedules).
    `source` may be one file or a template with `{service}`, `{month}`, `{year}`, `{mm}` (default
    `TAXI_SOURCE_URL`, else TLC's files; a URL with credentials in it, presigned or `user:password@`, belongs
    there or in a `SecretStr`, since a run's parameters are stored as given); `output` a folder or an
    `s3://` prefix (default `TAXI_OUTPUT_ROOT` or `./output`; for the sample, `./output/sample`, so synthetic months
    never land in the lake); `zones` a zone-table CSV, or `tlc` to download TLC's current one (default: TLC's table
    shipped in `data/`).

    `runner` picks where the months run: `threads` (this process) or `dask` (a LocalCluster for this run);
    `dask_address` (`tcp://HOST:PORT`) an existing Dask scheduler, whichever `runner` says.
    `allow_high_quarantine` lets a month whose quarantined share is above `TAXI_MAX_QUARANTINE_SHARE` (default
    50%) replace the month in the lake; without it such a month fails before its commit and the lake keeps the
    previous one.

    Why two flows. A flow's task runner is fixed when the flow is defined (`@flow(task_runner=...)`), before its
    parameters are known, so a flow cannot choose its own runner from a parameter. This thin parent picks the
    runner from `runner` and `dask_address` and runs the month-mapping subflow `taxi-etl-months` with
    `.with_options(task_runner=...)`: the same flow code on threads or Dask, from the command line or a
    deployment's parameters. The subflow's state is this run's state: Failed, naming every failed month, when
    any month failed (the others stay written); the summary artifact is published either way. The parent takes
    the subflow's return value, not its state: the engine hands back the value it holds, while a returned state
    can be the server's copy without its data (a busy server's answer to a retried request: `MissingResult`).

    Every task run is measured (`tasks/metrics.py`): when the run ends it publishes the `taxi-task-metrics`
    artifact, a month event per month (`taxi.month.loaded`, `taxi.month.failed`, `taxi.quarantine.high`), and with
    `TAXI_PUSHGATEWAY_URL` set pushes its metrics to Prometheus (`tasks/metrics_publish.py`).
    """
    logger = get_run_logger()
    started = time.perf_counter()
    uri = reveal(source) or settings.source_url()
    if isinstance(source, str) and redact_url(source) != source:
        logger.warning(
            "this run's parameters hold the credentials of its source URL as given: pass such a URL with --source "
            "on the command line, in TAXI_SOURCE_URL, or as a pydantic SecretStr"
        )
    with redacted_errors():  # a plan's error names its source
        plan = plan_run(service, months, uri, now=scheduled_time())
    root = output or (settings.SAMPLE_OUTPUT_ROOT if uses_sample(months, uri) else settings.output_root())
    check_output_root(root)  # a root that is a file, read-only or unreachable fails the run before any month is read
    for month, month_source in plan.months:
        logger.info("%s %s: reading %s", service, month, redact_url(month_source))
    months_flow = etl_months.with_options(task_runner=month_task_runner(runner, dask_address))
    try:
        outcome = months_flow(
            service,
            [str(month) for month, _ in plan.months],
            [SecretUrl(month_source) for _, month_source in plan.months],
            root,
            engine,
            zones,
            allow_high_quarantine,
        )
    except Exception as error:  # the months could not even start: the zone table, the cluster
        reason = redact_text(f"{type(error).__name__}: {error}")
        return Failed(message=f"{service}: the months could not start: {reason}")
    summary = RunSummary(service=service, engine=engine, output_root=root, zones_origin=outcome.zones_origin)
    if plan.latest:
        summary.latest = redact_text(plan.latest.describe())
    summary.months = outcome.done
    for done in outcome.done:
        logger.info(
            "%s %s: %s rows in, %s clean, %s quarantined %s",
            service,
            done.month,
            f"{done.rows_in:,}",
            f"{done.rows_clean:,}",
            f"{done.rows_quarantined:,}",
            done.quarantined_by_reason,
        )
    summary.failure = "; ".join(outcome.failures)
    summary.tasks = current_run_rows()
    summary.seconds = round(time.perf_counter() - started, 2)
    publish_summary(summary)
    if outcome.failures:
        # A Failed state, not a re-raised exception: the flow run fails with this message, and its log holds one
        # traceback per failed month (the task's) instead of the same one twice.
        logger.error("%d of %d month(s) failed; the others were written", len(outcome.failures), len(plan.months))
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
        "{service} and {month}; a presigned URL is shown and stored redacted (default: $TAXI_SOURCE_URL, else "
        "TLC's official file for each month)",
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
    parser.add_argument(
        "--runner",
        choices=("threads", "dask"),
        default="threads",
        help="where the months run: threads in this process ($TAXI_MONTH_THREADS at once, default 2), or dask, "
        "a LocalCluster started for the run (default: threads)",
    )
    parser.add_argument(
        "--dask-address",
        metavar="tcp://HOST:PORT",
        default=os.environ.get("TAXI_DASK_ADDRESS") or None,
        help="an existing Dask scheduler to run the months on, whatever --runner says; its workers need "
        "PREFECT_API_URL (default: $TAXI_DASK_ADDRESS, which `make dask` writes to .run/dask.env; set it "
        "empty to run without it)",
    )
    parser.add_argument(
        "--allow-high-quarantine",
        action="store_true",
        help="write a month even if more of its rows are quarantined than $TAXI_MAX_QUARANTINE_SHARE allows (0.5)",
    )
    return parser.parse_args(argv)


def default_services(args: argparse.Namespace) -> list[str]:
    """Both services for the sample; otherwise the one named in the source's file name, or yellow."""
    if args.service:
        return args.service
    source = args.source or settings.source_url()
    if not args.months and not source:
        return list(settings.SERVICES)
    name = (source or "").split("?", 1)[0].rsplit("/", 1)[-1]
    return [next((s for s in settings.SERVICES if s in name), "yellow")]


@contextmanager
def sigterm_exits() -> Iterator[None]:
    """Within the block, SIGTERM (`kill`, `docker stop`, a supervisor) ends the process as Ctrl-C would: by an
    exception, so that context managers and exit hooks run, among them the one that stops the temporary Prefect
    server a run starts without `PREFECT_API_URL`.

    Python's default for SIGTERM is to die at once, which orphans that server (a child process) still listening.
    Prefect's flow engine catches SIGTERM during a run, marks the run Crashed, then sends the signal again to the
    handler that was there before it: this one, which raises `SystemExit(143)`, 128 + SIGTERM as a shell reports it.
    """

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with sigterm_exits():
        return run_services(args)


def run_services(args: argparse.Namespace) -> int:
    """`taxi_etl` for each service the command line asks for; prints each summary, stops at the first failure."""
    for service in default_services(args):
        state = taxi_etl(
            service=service,
            months=args.months,
            source=SecretUrl(args.source) if args.source else None,  # stored in the run's parameters redacted
            output=args.output,
            engine=args.engine,
            zones=args.zones,
            runner=args.runner,
            dask_address=args.dask_address,
            allow_high_quarantine=args.allow_high_quarantine,
            return_state=True,
        )
        if not state.is_completed():
            print(f"error: {state.message}", file=sys.stderr)
            return 1
        try:
            summary = state.result()
        except MissingResult:  # completed, but its state came back from a busy server without the value
            print(f"{service}: completed; its summary is the run's artifact taxi-etl-{service}")
            continue
        print(render_markdown(RunSummary(**{**summary, "months": [MonthSummary(**m) for m in summary["months"]]})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
