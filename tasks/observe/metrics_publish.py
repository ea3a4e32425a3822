"""The flow side of the per-task metrics (`tasks/observe/metrics.py`): gather a run's records when it ends and
publish them.

`@monitored` adds flow hooks (`on_completion`, `on_failure`, `on_crashed`): when a run ends, they gather the
records its task runs left, in this process and on its Dask workers. A subflow hands them to its parent flow
run; the run a user started (or a deployment), and any `taxi_etl` run, publishes them:

- the table artifact `taxi-task-metrics`, one row per task run, each naming the publishing run and its deployment,
  and one DEBUG log line per task run;
- with `month_events=True` (`taxi_etl`): per month task `taxi.month.loaded` (payload: the row) or
  `taxi.month.failed` (payload: the reason), and `taxi.quarantine.high` above `settings.quarantine_alert_ratio()`,
  on the resource `taxi.month.<service>.<YYYY-MM>` related to the run and its deployment; a crashed run reports as
  failed every month it was asked for and did not load;
- with `prometheus=True` (`taxi_etl`) and `TAXI_PUSHGATEWAY_URL` set: `tasks.observe.prometheus.push_run_metrics`,
where a
  failed push is a warning, never a failed run.

The hooks run after the run's final state is set: what they publish never changes the run's state.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload
from uuid import UUID

from prefect import Flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.logging import get_logger
from prefect.states import State

from tasks import settings
from tasks.observe.metrics import MONTH_PATTERN, STORE, TaskMetrics, quiet_metric_hooks, records_from_dask
from tasks.redact import redact_text

ARTIFACT_KEY = "taxi-task-metrics"
_flow_started: dict[str, float] = {}  # flow run id -> perf counter when it started running

FlowT = TypeVar("FlowT", bound=Flow)


@overload
def monitored(
    flow: FlowT, *, always_publish: bool = False, month_events: bool = False, prometheus: bool = False
) -> FlowT: ...


@overload
def monitored(
    flow: None = None, *, always_publish: bool = False, month_events: bool = False, prometheus: bool = False
) -> Callable[[FlowT], FlowT]: ...


def monitored(
    flow: FlowT | None = None, *, always_publish: bool = False, month_events: bool = False, prometheus: bool = False
) -> FlowT | Callable[[FlowT], FlowT]:
    """Publish the task metrics of every run of `flow` (hooks appended to its own; none when
    `TAXI_TASK_METRICS=0`). Use as `@monitored` or `@monitored(always_publish=True, month_events=True, ...)`.

    A subflow's run hands its records to its parent; with `always_publish` it also publishes them itself (for
    `taxi_etl`, whose runs the monitoring reads whoever started them)."""
    if flow is None:
        return lambda undecorated: monitored(
            undecorated, always_publish=always_publish, month_events=month_events, prometheus=prometheus
        )
    if settings.task_metrics_enabled() and note_flow_start not in flow.on_running_hooks:

        def publish_task_metrics(flow: Flow, flow_run: FlowRun, state: State) -> None:  # the name Prefect logs
            finish_flow_run(
                flow, flow_run, state, always_publish=always_publish, month_events=month_events, prometheus=prometheus
            )

        finish = publish_task_metrics
        # New lists, not appends: a flow made by `with_options` shares its hook lists with the original.
        flow.on_running_hooks = [*flow.on_running_hooks, note_flow_start]
        flow.on_completion_hooks = [*flow.on_completion_hooks, finish]
        flow.on_failure_hooks = [*flow.on_failure_hooks, finish]
        flow.on_crashed_hooks = [*flow.on_crashed_hooks, finish]
        quiet_metric_hooks()
    return flow


def note_flow_start(flow: Flow, flow_run: FlowRun, state: State) -> None:
    _flow_started.setdefault(str(flow_run.id), time.perf_counter())


def finish_flow_run(
    flow: Flow, flow_run: FlowRun, state: State, *, always_publish: bool, month_events: bool, prometheus: bool
) -> None:
    """Gather the run's records; hand them to the parent flow run, and publish them if this run is the top one
    (or `always_publish`)."""
    run_id = str(flow_run.id)
    records = STORE.pop(run_id) + records_from_dask(run_id)
    started = _flow_started.pop(run_id, None)
    in_run = FlowRunContext.get() is not None
    logger = get_run_logger() if in_run else get_logger("taxi.metrics")
    if flow_run.parent_task_run_id:
        with get_client(sync_client=True) as client:
            STORE.add(str(client.read_task_run(flow_run.parent_task_run_id).flow_run_id), records)
        if not always_publish:
            return
    deployment = ""
    if flow_run.deployment_id:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment(flow_run.deployment_id).name
    rows = [
        {**record.as_row(), "flow": flow.name, "flow_run_id": run_id, "deployment": deployment}
        for record in sorted(records, key=lambda record: record.started_at)
    ]
    if rows:
        publish_artifact(rows, run_id, in_run)
    log_rows(logger, rows)
    run_seconds = time.perf_counter() - started if started else 0.0
    if month_events:
        related = related_resources(flow_run, deployment)
        emit_month_events(rows, {record.task_run: record.error for record in records}, related)
        if state.is_crashed():
            emit_unloaded_months(rows, flow_run, state, related)
    if prometheus and (url := settings.pushgateway_url()):
        push_to_prometheus(logger, url, rows, flow.name, deployment, flow_run, state, run_seconds)


def publish_artifact(rows: list[dict[str, Any]], flow_run_id: str, in_run: bool) -> None:
    description = f"Per-task metrics of this run: {len(rows)} task run(s) (`tasks/observe/metrics.py`)"
    if in_run:
        create_table_artifact(table=rows, key=ARTIFACT_KEY, description=description)
        return
    with get_client(sync_client=True) as client:  # a crashed run's hook runs outside the run's context
        client.create_artifact(
            ArtifactCreate(
                key=ARTIFACT_KEY,
                type="table",
                description=description,
                data=json.dumps(rows),
                flow_run_id=UUID(flow_run_id),
            )
        )


def log_rows(logger: logging.Logger | logging.LoggerAdapter, rows: list[dict[str, Any]]) -> None:
    for row in rows:  # at DEBUG: the artifact and the run summary show the same, and a console wants the summary
        logger.debug(
            "task metrics %s: %s, %.2f s wall, %.2f s CPU, peak RSS %.0f MiB, rows %s in / %s out / %s quarantined, "
            "%s B read, %s B written, %d retries",
            row["task_run"],
            row["state"],
            row["wall_seconds"],
            row["cpu_seconds"],
            row["peak_rss_bytes"] / 2**20,
            f"{row['rows_in']:,}",
            f"{row['rows_out']:,}",
            f"{row['rows_quarantined']:,}",
            f"{row['bytes_read']:,}",
            f"{row['bytes_written']:,}",
            row["retries"],
        )


def month_resource(service: str, month: str) -> dict[str, str]:
    return {"prefect.resource.id": f"taxi.month.{service}.{month}", "taxi.service": service, "taxi.month": month}


def related_resources(flow_run: FlowRun, deployment: str) -> list[dict[str, str]]:
    related = [
        {"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.role": "flow-run"}
        | {"prefect.resource.name": flow_run.name}
    ]
    if flow_run.deployment_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
                "prefect.resource.role": "deployment",
                "prefect.resource.name": deployment,
            }
        )
    return related


def emit_month_events(rows: list[dict[str, Any]], errors: dict[str, str], related: list[dict[str, str]]) -> None:
    """`taxi.month.loaded` or `taxi.month.failed` per month task run, and `taxi.quarantine.high` above the ratio."""
    threshold = settings.quarantine_alert_ratio()
    for row in rows:
        if not (row["service"] and row["month"]):
            continue
        resource = month_resource(row["service"], row["month"])
        if row["state"] != "COMPLETED":
            reason = redact_text(errors.get(row["task_run"]) or row["state"])
            emit_event("taxi.month.failed", resource, related=related, payload={"reason": reason})
            continue
        emit_event("taxi.month.loaded", resource, related=related, payload=row)
        ratio = row["rows_quarantined"] / row["rows_in"] if row["rows_in"] else 0.0
        if ratio > threshold:
            payload = {"quarantine_ratio": round(ratio, 6), "threshold": threshold}
            emit_event("taxi.quarantine.high", resource, related=related, payload=payload)


def emit_unloaded_months(
    rows: list[dict[str, Any]], flow_run: FlowRun, state: State, related: list[dict[str, str]]
) -> None:
    """A crashed run: `taxi.month.failed` for each month it was asked for that neither loaded nor failed alone."""
    service = str((flow_run.parameters or {}).get("service", ""))
    seen = {row["month"] for row in rows if row["service"] == service}
    for month in (flow_run.parameters or {}).get("months") or []:
        if MONTH_PATTERN.match(str(month)) and month not in seen:
            payload = {"reason": redact_text(f"Crashed: {state.message}")}
            emit_event("taxi.month.failed", month_resource(service, month), related=related, payload=payload)


def push_to_prometheus(
    logger: logging.Logger | logging.LoggerAdapter,
    url: str,
    rows: list[dict[str, Any]],
    flow: str,
    deployment: str,
    flow_run: FlowRun,
    state: State,
    run_seconds: float,
) -> None:
    """Push the run's metrics to the Pushgateway at `url`; a failure is logged as a warning, nothing more."""
    try:
        from tasks.observe.prometheus import push_run_metrics  # another module of the project, optional here

        push_run_metrics(
            url,
            rows,
            flow=flow,
            deployment=deployment,
            service=str((flow_run.parameters or {}).get("service", "")),
            succeeded=state.is_completed(),
            run_seconds=run_seconds,
        )
    except Exception as error:
        logger.warning("metrics not pushed to the Pushgateway at %s: %s: %s", url, type(error).__name__, error)


__all__ = ["ARTIFACT_KEY", "TaskMetrics", "monitored"]
