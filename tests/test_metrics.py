"""Per-task metrics on real runs: the `taxi-task-metrics` artifact, the month events, on threads and on Dask worker
processes, against the session's Prefect server. Events are read back from the server's event store."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid

import pyarrow as pa
import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from flows.etl import taxi_etl, taxi_etl_on
from flows.monitoring import run_events as events_of
from tasks import settings
from tasks.observe.metrics import metered
from tasks.observe.metrics_publish import ARTIFACT_KEY, monitored

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
DATASETS = ("trips", "quarantine")
SAMPLE = settings.SAMPLE_DIR / "green_tripdata_2025-01.parquet"
CONTRACT_FIELDS = {
    "flow": str,
    "flow_run_id": str,
    "deployment": str,
    "task": str,
    "task_run": str,
    "service": str,
    "month": str,
    "state": str,
    "started_at": float,
    "wall_seconds": float,
    "cpu_seconds": float,
    "peak_rss_bytes": int,
    "rows_in": int,
    "rows_out": int,
    "rows_quarantined": int,
    "bytes_read": int,
    "bytes_written": int,
    "retries": int,
    "quarantined_by_reason": str,
}


def artifact_rows(flow_run_id) -> list[dict]:
    """The `taxi-task-metrics` rows of one flow run, read as the perf report reads them."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ARTIFACT_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    assert len(artifacts) == 1, f"expected one {ARTIFACT_KEY} artifact on the run, found {len(artifacts)}"
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data


def month_rows(rows: list[dict]) -> dict[str, dict]:
    return {row["month"]: row for row in rows if row["task"] == "etl-month"}


def check_month_rows(rows: list[dict], summary: dict, flow_run_id) -> None:
    """Every month's record carries the figures the run summary and the written files hold."""
    months = month_rows(rows)
    assert sorted(months) == [month["month"] for month in summary["months"]]
    for month in summary["months"]:
        row = months[month["month"]]
        assert {name: type(row[name]) for name in CONTRACT_FIELDS} == CONTRACT_FIELDS
        assert (row["flow"], row["flow_run_id"], row["deployment"]) == ("taxi_etl", str(flow_run_id), "")
        assert (row["service"], row["state"], row["retries"]) == ("green", "COMPLETED", 0)
        assert row["task_run"] == f"month-green-{month['month']}"
        assert (row["rows_in"], row["rows_out"], row["rows_quarantined"]) == (
            month["rows_in"],
            month["rows_clean"],
            month["rows_quarantined"],
        )
        assert json.loads(row["quarantined_by_reason"]) == month["quarantined_by_reason"]
        assert row["bytes_read"] == (settings.SAMPLE_DIR / f"green_tripdata_{month['month']}.parquet").stat().st_size
        assert row["bytes_written"] == month["bytes_written"] > 0  # the month's data files in both Delta tables
        assert row["wall_seconds"] > 0 and row["cpu_seconds"] > 0 and row["peak_rss_bytes"] > 50 * 2**20
        assert row["started_at"] <= time.time()


def test_threads_run_publishes_every_task_run_and_month_events(tmp_path):
    state = taxi_etl(service="green", output=str(tmp_path), return_state=True)
    summary, run_id = state.result(), state.state_details.flow_run_id
    rows = artifact_rows(run_id)
    assert {row["task"] for row in rows} == {"load-zones", "etl-month", "publish-summary"}
    check_month_rows(rows, summary, run_id)
    assert summary["tasks"] and {row["task_run"] for row in summary["tasks"]} <= {row["task_run"] for row in rows}

    threshold = settings.quarantine_alert_ratio()
    high = {m: r for m, r in month_rows(rows).items() if r["rows_quarantined"] / r["rows_in"] > threshold}
    loaded = events_of(run_id, ["taxi.month.loaded"], expected=2)
    assert {event.resource.id for event in loaded} == {f"taxi.month.green.{m}" for m in settings.SAMPLE_MONTHS}
    for event in loaded:
        assert event.resource["taxi.service"] == "green"
        assert event.payload == month_rows(rows)[event.resource["taxi.month"]]
    alerts = events_of(run_id, ["taxi.quarantine.high"], expected=len(high), wait_seconds=5 if not high else 60)
    assert {event.resource["taxi.month"] for event in alerts} == set(high)


def test_a_low_threshold_raises_the_quarantine_alert(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXI_QUARANTINE_ALERT_RATIO", "0.0001")
    state = taxi_etl(service="green", months=["2025-01"], source=str(SAMPLE), output=str(tmp_path), return_state=True)
    run_id, month = state.state_details.flow_run_id, state.result()["months"][0]
    (alert,) = events_of(run_id, ["taxi.quarantine.high"], expected=1)
    assert alert.resource.id == "taxi.month.green.2025-01"
    assert alert.payload == {
        "quarantine_ratio": round(month["rows_quarantined"] / month["rows_in"], 6),
        "threshold": 0.0001,
    }


def test_a_failed_month_emits_month_failed_with_its_reason(tmp_path):
    truncated = tmp_path / "green_tripdata_2025-01.parquet"
    truncated.write_bytes(SAMPLE.read_bytes()[:5000])
    state = taxi_etl(
        service="green", months=["2025-01"], source=str(truncated), output=str(tmp_path / "out"), return_state=True
    )
    assert state.is_failed()
    run_id = state.state_details.flow_run_id
    (row,) = month_rows(artifact_rows(run_id)).values()
    assert (row["state"], row["rows_in"], row["bytes_written"]) == ("FAILED", 0, 0)
    (failed,) = events_of(run_id, ["taxi.month.failed"], expected=1)
    assert failed.resource.id == "taxi.month.green.2025-01"
    assert failed.payload["reason"].startswith("SourceError: ") and "truncated" in failed.payload["reason"]
    assert not events_of(run_id, ["taxi.month.loaded"], expected=1, wait_seconds=2)


def test_dask_worker_processes_send_their_records_back(tmp_path):
    """On a LocalCluster of worker processes (the session's server URL is set), the months run in other processes:
    their records reach the artifact only through the Dask event channel."""
    state = taxi_etl_on("dask")(service="green", output=str(tmp_path), return_state=True)
    summary, run_id = state.result(), state.state_details.flow_run_id
    check_month_rows(artifact_rows(run_id), summary, run_id)
    assert len(events_of(run_id, ["taxi.month.loaded"], expected=2)) == 2


def test_a_failed_pushgateway_never_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXI_PUSHGATEWAY_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    state = taxi_etl(service="green", months=["2025-01"], source=str(SAMPLE), output=str(tmp_path), return_state=True)
    assert state.is_completed()


# The mechanism on tasks of any shape, in a flow of its own.
attempts: dict[str, int] = {}


@metered
@task(retries=2, retry_delay_seconds=0)
def flaky_table(key: str, rows: int) -> pa.Table:
    """Fails on its first attempt, then returns a table of `rows` rows."""
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] == 1:
        raise ConnectionError("transient")
    return pa.table({"x": list(range(rows))})


@metered
@task
def hold_memory(mebibytes: int) -> int:
    """Touch `mebibytes` MiB, so the process's peak resident memory is at least that."""
    block = bytearray(mebibytes * 2**20)
    block[::4096] = b"x" * len(block[::4096])
    return len(block)


@monitored
@flow
def shapes(key: str) -> None:
    flaky_table(key, 123)
    hold_memory(300)


def test_retries_rows_of_a_table_and_peak_memory_are_recorded():
    state = shapes(uuid.uuid4().hex, return_state=True)
    rows = {row["task"]: row for row in artifact_rows(state.state_details.flow_run_id)}
    assert (rows["flaky_table"]["retries"], rows["flaky_table"]["rows_out"]) == (1, 123)
    assert rows["flaky_table"]["state"] == "COMPLETED"
    assert rows["hold_memory"]["peak_rss_bytes"] >= 300 * 2**20
    assert rows["hold_memory"]["flow"] == "shapes"


def failing_hook(task, task_run, state) -> None:
    raise RuntimeError("a hook of the user's that breaks")


def test_the_metric_hooks_add_no_lines_to_a_runs_log_and_other_hooks_still_do():
    """Prefect logs two INFO lines per hook call; with a hook on every task they were half of a run's console."""
    heard: list[str] = []
    listener = logging.Handler()
    listener.emit = lambda record: heard.append(record.getMessage())  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in ("prefect.task_runs", "prefect.flow_runs", "prefect.engine")]
    for logger in loggers:
        logger.addHandler(listener)
    try:
        shapes.with_options(on_completion=[failing_hook])(uuid.uuid4().hex)
    finally:
        for logger in loggers:
            logger.removeHandler(listener)
    about_hooks = [line for line in heard if "hook" in line.lower()]
    assert about_hooks and all("failing_hook" in line for line in about_hooks), about_hooks
    assert any("error was encountered while running hook 'failing_hook'" in line for line in about_hooks)


@monitored
@flow(name="calls-taxi-etl")
def calls_taxi_etl(output: str) -> str:
    """A flow that runs `taxi_etl` as a subflow; returns the subflow's run id."""
    state = taxi_etl(service="green", months=["2025-01"], source=str(SAMPLE), output=output, return_state=True)
    return str(state.state_details.flow_run_id)


def test_taxi_etl_as_a_subflow_publishes_on_its_own_run_and_its_parents(tmp_path):
    state = calls_taxi_etl(str(tmp_path), return_state=True)
    etl_run_id = state.result()
    on_etl = {row["task_run"]: row for row in artifact_rows(etl_run_id)}
    on_parent = {row["task_run"]: row for row in artifact_rows(state.state_details.flow_run_id)}
    assert "month-green-2025-01" in on_etl and set(on_etl) == set(on_parent)
    assert {row["flow"] for row in on_etl.values()} == {"taxi_etl"}
    assert {row["flow"] for row in on_parent.values()} == {"calls-taxi-etl"}
    assert len(events_of(etl_run_id, ["taxi.month.loaded"], expected=1)) == 1


CRASHING_FLOW = """
from prefect import flow, task

from tasks.observe.metrics import metered
from tasks.observe.metrics_publish import monitored


@metered
@task(name="counted-step")
def counted_step() -> int:
    return 1


@monitored
@flow(name="crashes-after-a-step")
def crashes_after_a_step() -> None:
    counted_step()
    raise KeyboardInterrupt  # what Ctrl-C does in the middle of a run


crashes_after_a_step()
"""


def test_a_crashed_run_still_publishes_what_its_finished_steps_recorded(tmp_path):
    """The engine marks an interrupted run Crashed and runs its `on_crashed` hooks: the steps that finished before
    the crash are in the run's metrics artifact, so a crash leaves no hole in the run history."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL

    script = tmp_path / "crashes.py"
    script.write_text(CRASHING_FLOW)
    crashed = subprocess.run(
        [sys.executable, str(script)],
        cwd=settings.PROJECT_ROOT,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert crashed.returncode != 0 and "KeyboardInterrupt" in crashed.stderr, crashed.stderr[-3000:]
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["crashes-after-a-step"])))
    assert run.state.is_crashed(), run.state
    (row,) = artifact_rows(run.id)
    assert (row["flow"], row["task"], row["state"]) == ("crashes-after-a-step", "counted-step", "COMPLETED")
