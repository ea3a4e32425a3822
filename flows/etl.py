"""`taxi_etl`: the months of one service, each one task run of `etl_month`, then a summary of the run.

The flow reads top to bottom as a run goes: plan the months, check the output, load the zone table, submit one
`etl_month` task run per month (`month-yellow-2025-01`, the composition in `tasks/pipeline/month.py`), wait for every
month, publish the summary. The months are task runs of this flow, so its run page lists them, its Artifacts tab
holds the summary, and its log holds a failed month's traceback.

Where the months run is the flow's task runner: threads by default (`settings.month_threads()` at once), or Dask.
A flow's task runner is fixed when it is defined, so it is chosen by the entry point, never by a parameter:
`taxi_etl_on("dask")` (a LocalCluster for the run) or `taxi_etl_on(dask_address="tcp://HOST:PORT")` (an existing
scheduler) is the same flow on another runner, and the deployment entry point `flows/etl.py:taxi_etl_on_dask` is
that flow for `TAXI_DASK_ADDRESS`'s scheduler, or a LocalCluster without one.

    python -m flows.etl                                   # the committed synthetic sample, yellow and green
    python -m flows.etl --service green --month 2025-01   # TLC's official file (needs the internet)
    python -m flows.etl --runner dask                     # the sample on a LocalCluster

Course page: `docs/scale.md` (and the walk through the code: `docs/pipeline.md`).
"""

from __future__ import annotations

import sys
import time
from typing import Literal

from prefect import Flow, flow, get_run_logger
from prefect.exceptions import MissingResult
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import SecretStr

from blocks.limits import download_slot
from flows import etl_cli
from flows.runners import (
    Runner,
    month_task_runner,
    one_month_per_worker,
    publish_dask_links,
    retry_month_if_transient,
)
from tasks import settings
from tasks.months import Month
from tasks.observe.metrics import current_run_rows
from tasks.observe.metrics_publish import monitored
from tasks.pipeline.month import etl_month
from tasks.pipeline.output_check import check_output_root
from tasks.pipeline.plan import plan_run, scheduled_time
from tasks.pipeline.report import RunSummary, publish_summary
from tasks.pipeline.zones import ZoneTable, load_zones
from tasks.redact import hide_url_credentials_in_logs, redact_text, redact_url, redacted_errors, reveal
from tasks.retries import network_retry_options

hide_url_credentials_in_logs()  # a source URL's credentials (presigned, user:password@) never reach a log record


@monitored(always_publish=True, month_events=True, prometheus=True)
@flow(name="taxi_etl", task_runner=ThreadPoolTaskRunner(max_workers=settings.month_threads()))
def taxi_etl(
    service: Literal["yellow", "green"] = "yellow",
    months: list[str] | None = None,
    source: str | SecretStr | None = None,
    output: str | None = None,
    engine: Literal["polars", "pandas"] = "polars",
    zones: str | None = None,
    allow_high_quarantine: bool = False,
) -> dict | State:
    """Process `months` of `service` trips from `source` into the lake's `trips` and `quarantine` tables.

    With neither months nor source it runs on the committed sample (written to `./output/sample`, so synthetic
    months never land in the lake); with months only, on TLC's official files. A month may be `latest`: the
    newest month TLC has published when the run was scheduled. `source` is one file or a template with
    `{service}`, `{month}`, `{year}`, `{mm}` (a URL with credentials belongs in `TAXI_SOURCE_URL` or a
    `SecretStr`: a run's parameters are stored as given); `output` a folder or `s3://` prefix; `zones` a zone CSV
    or `tlc`. A month whose quarantined share is above `TAXI_MAX_QUARANTINE_SHARE` fails before its commit unless
    `allow_high_quarantine`. A failed month fails the run by name; the other months stay written.
    """
    logger = get_run_logger()
    started = time.perf_counter()
    uri = reveal(source) or settings.source_url()
    if isinstance(source, str) and redact_url(source) != source:
        logger.warning("this run's parameters hold its source URL's credentials: pass it as a SecretStr instead")
    with redacted_errors():  # a plan's error names its source
        plan = plan_run(service, months, uri, now=scheduled_time(flow_run.scheduled_start_time))
    root = output or (settings.SAMPLE_OUTPUT_ROOT if not months and not uri else settings.output_root())
    check_output_root(root)  # a root that is a file, read-only or unreachable fails before any month is read
    publish_dask_links()
    zone_table = load_zones(zones)
    futures = submit_months(plan.months, service, root, zone_table, engine, allow_high_quarantine)

    summary = RunSummary(service=service, engine=engine, output_root=root, zones_origin=zone_table.origin)
    summary.latest = redact_text(plan.latest.describe()) if plan.latest else ""
    failures = []
    for (month, _), future in zip(plan.months, futures, strict=True):
        future.wait()
        if future.state.is_completed():
            done = future.state.result()
            summary.months.append(done)
            logger.info("%s %s: %s", service, month, done.describe())
        else:
            failures.append(f"{service} {month}: {failure_reason(future.state)}")
    summary.failure = "; ".join(failures)
    summary.tasks = current_run_rows()
    summary.seconds = round(time.perf_counter() - started, 2)
    publish_summary(summary)  # the run's Artifacts tab: taxi-etl-<service>
    if failures:  # the run fails with this message; each failed month's task run logged its own traceback
        logger.error("%d of %d month(s) failed; the others were written", len(failures), len(plan.months))
        return Failed(message=summary.failure)
    return summary.to_dict()


def submit_months(
    months: list[tuple[Month, str]],
    service: str,
    root: str,
    zone_table: ZoneTable,
    engine: str,
    allow_high_quarantine: bool,
) -> list[PrefectFuture]:
    """One `etl_month` task run per month, named after it, retried alone on transient errors, one per Dask worker.

    This is `etl_month.map(...)` written out: a month read over http(s) first takes a slot of the download rate
    limit, so the months of a year on TLC start downloading at the limit's pace instead of all at once."""
    month_task = etl_month.with_options(
        task_run_name="month-{service}-{month}",
        **{**network_retry_options(), "retry_condition_fn": retry_month_if_transient},
    )
    futures = []
    with one_month_per_worker():
        for month, month_source in months:
            with download_slot(month_source):
                futures.append(
                    month_task.submit(month_source, service, month, root, zone_table, engine, allow_high_quarantine)
                )
    return futures


def failure_reason(state: State) -> str:
    """`ErrorType: message` of a failed month. Its exception is normally in the state; a state read back from a
    busy server can come without it (`MissingResult`), and then the state's own message says the same."""
    try:
        error = state.result(raise_on_failure=False)
    except MissingResult:
        return redact_text(state.message or "failed")
    return redact_text(f"{type(error).__name__}: {error}")


def taxi_etl_on(runner: Runner = "threads", dask_address: str | None = None) -> Flow:
    """`taxi_etl` with its months on `runner`, or on the Dask scheduler at `dask_address` whatever `runner` says."""
    if runner == "threads" and not dask_address:
        return taxi_etl
    return taxi_etl.with_options(task_runner=month_task_runner(runner, dask_address))


# The deployment entry point for Dask (prefect.yaml): TAXI_DASK_ADDRESS's scheduler, else a LocalCluster per run.
taxi_etl_on_dask = taxi_etl_on("dask", settings.dask_address())


def main(argv: list[str] | None = None) -> int:
    return etl_cli.main(taxi_etl_on, argv)


if __name__ == "__main__":
    sys.exit(main())
