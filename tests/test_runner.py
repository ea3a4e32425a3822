"""Months mapped over threads, a Dask LocalCluster and an existing Dask scheduler; retries per month; the limits.

Every run here is the sample's two small green months, against the session's Prefect test server.
"""

from __future__ import annotations

import shutil
import threading
import time
from http.server import ThreadingHTTPServer
from typing import ClassVar

import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId
from prefect.settings import PREFECT_API_URL
from prefect_dask import DaskTaskRunner

import servers
from blocks import limits
from flows.etl import taxi_etl, taxi_etl_on
from flows.runners import MONTH_RESOURCE
from tasks import settings
from tasks.lake.write_lock import month_write_lock
from tasks.months import Month
from tests.conftest import QuietHandler
from tests.factories import written_rows
from tests.polling import eventually
from tests.test_flow import _without_total, task_runs_of

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
SAMPLE_MONTHS = list(settings.SAMPLE_MONTHS)


def month_runs(state) -> dict[str, object]:
    """The run's month task runs by name (`month-green-2025-01`)."""
    return {run.name: run for run in task_runs_of(state) if run.name.startswith("month-")}


def assert_every_sample_month_written(summary: dict, root) -> None:
    assert [m["month"] for m in summary["months"]] == SAMPLE_MONTHS
    for month in summary["months"]:
        assert written_rows(root, "green", month["month"])["trips"] == month["rows_clean"] > 0


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end at the same instant as a start closes first)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = most = 0
    for _, change in events:
        open_now += change
        most = max(most, open_now)
    return most


def test_threads_by_default_a_task_run_per_month(tmp_path):
    state = taxi_etl(service="green", output=str(tmp_path), return_state=True)
    assert state.is_completed()
    assert_every_sample_month_written(state.result(), tmp_path)
    runs = month_runs(state)
    assert sorted(runs) == [f"month-green-{m}" for m in SAMPLE_MONTHS]
    assert all(run.state.is_completed() and run.run_count == 1 for run in runs.values())


def test_on_a_dask_local_cluster(tmp_path, monkeypatch):
    report = tmp_path / "dask-report.html"
    monkeypatch.setenv("TAXI_DASK_PERFORMANCE_REPORT", str(report))
    state = taxi_etl_on("dask")(service="green", output=str(tmp_path), return_state=True)
    assert state.is_completed(), state.message
    assert_every_sample_month_written(state.result(), tmp_path)
    assert sorted(month_runs(state)) == [f"month-green-{m}" for m in SAMPLE_MONTHS]
    # Dask's performance report of the months, and the links the perf-report follows: the report file's and the
    # dashboard's (a LocalCluster serves one on a free loopback port while the run lasts)
    assert "Dask Performance Report" in report.read_text()
    assert f"({report.resolve().as_uri()})" in Artifact.get("dask-performance-report").data
    assert "(http://127.0.0.1:" in Artifact.get("dask-dashboard").data


def test_one_month_at_a_time_per_dask_worker(tmp_path):
    """One worker with two threads but one MONTH: the months run one after the other, never side by side."""
    one_worker = DaskTaskRunner(
        cluster_kwargs={
            "n_workers": 1,
            "threads_per_worker": 2,
            "processes": False,
            "dashboard_address": None,
            "resources": {MONTH_RESOURCE: 1},
        }
    )
    state = taxi_etl.with_options(task_runner=one_worker)(service="green", output=str(tmp_path), return_state=True)
    assert state.is_completed(), state.message
    runs = list(month_runs(state).values())
    assert len(runs) == len(SAMPLE_MONTHS)
    assert max_overlap([(run.start_time.timestamp(), run.end_time.timestamp()) for run in runs]) == 1


@pytest.fixture
def existing_dask(tmp_path_factory, monkeypatch):
    """`servers.start_dask` (a scheduler and two workers with MONTH=1) reporting to the session's test server;
    its process ids are recorded in a temporary folder, so stopping them never touches a `make dask` cluster."""
    from distributed import Client

    monkeypatch.setattr(settings, "RUN_DIR", tmp_path_factory.mktemp("run"))
    address = servers.start_dask(PREFECT_API_URL.value())["TAXI_DASK_ADDRESS"]
    try:
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            assert all(w["resources"] == {MONTH_RESOURCE: 1} for w in client.scheduler_info()["workers"].values())
        yield address
    finally:
        servers.stop()


def test_on_an_existing_scheduler_the_months_appear_in_the_ui_with_their_logs(tmp_path, existing_dask):
    state = taxi_etl_on(dask_address=existing_dask)(service="green", output=str(tmp_path), return_state=True)
    assert state.is_completed(), state.message
    assert_every_sample_month_written(state.result(), tmp_path)
    runs = month_runs(state)
    assert sorted(runs) == [f"month-green-{m}" for m in SAMPLE_MONTHS]
    month_run_ids = {run.id for run in runs.values()}
    by_task_run = LogFilter(task_run_id=LogFilterTaskRunId(any_=list(month_run_ids)))

    def every_month_logged_its_end() -> bool:  # logs arrive in batches, from the worker processes
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=by_task_run)
        return {log.task_run_id for log in logs if "Finished in state Completed" in log.message} == month_run_ids

    eventually(every_month_logged_its_end, "each month task run's 'Finished in state Completed' log", 60)


class FlakyHandler(QuietHandler):
    """Serves a folder, but answers the first request for each file whose name contains `flaky` with 503."""

    flaky: ClassVar[str] = ""
    failed: ClassVar[set[str]] = set()

    def do_GET(self):
        if self.flaky and self.flaky in self.path and self.path not in self.failed:
            self.failed.add(self.path)
            self.send_error(503, "Service Unavailable")
            return
        super().do_GET()


@pytest.fixture
def flaky_http(tmp_path):
    """An http server for the sample's green months whose 2025-01 file fails once with 503: `base URL`."""
    for month in SAMPLE_MONTHS:
        shutil.copy(settings.SAMPLE_DIR / f"green_tripdata_{month}.parquet", tmp_path)
    handler = type("Handler", (FlakyHandler,), {"flaky": "2025-01", "failed": set()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_month_failing_transiently_retries_alone(tmp_path, flaky_http, monkeypatch):
    monkeypatch.setattr(settings, "RETRY_BACKOFF_SECONDS", 0.1)
    source = flaky_http + "/{service}_tripdata_{month}.parquet"
    out = tmp_path / "out"
    state = taxi_etl(service="green", months=SAMPLE_MONTHS, source=source, output=str(out), return_state=True)
    assert state.is_completed(), state.message
    assert_every_sample_month_written(state.result(), out)
    runs = month_runs(state)
    assert {name: run.run_count for name, run in runs.items()} == {
        "month-green-2025-01": 2,  # the 503, then the retry
        "month-green-2025-02": 1,
    }


def test_a_month_failing_for_good_fails_the_run_and_the_others_are_written(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _without_total(folder / "green_tripdata_2025-01.parquet")
    shutil.copy(settings.SAMPLE_DIR / "green_tripdata_2025-02.parquet", folder)
    out = tmp_path / "out"
    state = taxi_etl(
        service="green",
        months=SAMPLE_MONTHS,
        source=str(folder / "{service}_tripdata_{month}.parquet"),
        output=str(out),
        return_state=True,
    )
    assert state.is_failed()
    assert "green 2025-01" in state.message and "2025-02" not in state.message
    assert written_rows(out, "green", "2025-02")["trips"] > 0
    assert written_rows(out, "green", "2025-01") == {}
    artifact = Artifact.get("taxi-etl-green").data
    assert "| 2025-02 |" in artifact and "missing required column(s) total_amount" in artifact
    assert {name: run.run_count for name, run in month_runs(state).items()} == {
        "month-green-2025-01": 1,  # permanent: not retried
        "month-green-2025-02": 1,
    }


def test_the_write_limit_never_lets_two_writers_of_a_month_overlap():
    """Several threads hold the same month's write limit (the session's real Prefect server grants the slots)."""
    month, intervals, lock = Month(2031, 7), [], threading.Lock()

    def write():
        with month_write_lock("green", month):
            started = time.monotonic()
            time.sleep(0.2)
            ended = time.monotonic()
        with lock:
            intervals.append((started, ended))

    writers = [threading.Thread(target=write) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert len(intervals) == 4
    assert max_overlap(intervals) == 1


def test_limits_are_created_idempotently_and_put_back():
    spec = limits.LimitSpec("taxi-test-idempotent", limit=3, slot_decay_per_second=0.5)
    assert limits.ensure_limit(spec) == "created"
    assert limits.ensure_limit(spec) == "exists"
    assert limits.ensure_limit(limits.LimitSpec(spec.name, limit=5, slot_decay_per_second=0.5)) == "updated"
    assert limits.ensure_limit(spec) == "updated"
    with get_client(sync_client=True) as client:
        stored = client.read_global_concurrency_limit_by_name(spec.name)
    assert (stored.limit, stored.slot_decay_per_second, stored.active) == (3, 0.5, True)
    assert set(limits.ensure_project_limits()) == {limits.DOWNLOAD_LIMIT}


def test_the_download_rate_limit_lets_a_burst_through_then_makes_the_next_wait(monkeypatch):
    """Two slots that decay very slowly: two downloads start, the third waits (and gives up after 1 s here)."""
    slow = limits.LimitSpec("taxi-test-downloads", limit=2, slot_decay_per_second=0.01)
    monkeypatch.setattr(limits, "DOWNLOAD_LIMIT", slow.name)
    monkeypatch.setattr(limits, "PROJECT_LIMITS", (slow,))
    limits._download_limit_ready.cache_clear()
    try:
        for _ in range(2):
            with limits.download_slot("http://127.0.0.1:9/green_tripdata_2025-01.parquet", timeout_seconds=1):
                pass
        with limits.download_slot("/local/green_tripdata_2025-01.parquet", timeout_seconds=1):
            pass  # local files are not downloads: no slot taken, no wait
        third = limits.download_slot("https://example.invalid/green_tripdata_2025-01.parquet", timeout_seconds=1)
        with pytest.raises(TimeoutError), third:
            pass
    finally:
        limits._download_limit_ready.cache_clear()


def test_the_command_line_takes_the_dask_address_from_make_dask(monkeypatch):
    from flows.etl_cli import parse_args

    monkeypatch.setenv("TAXI_DASK_ADDRESS", "tcp://127.0.0.1:8786")
    assert (parse_args([]).runner, parse_args([]).dask_address) == ("threads", "tcp://127.0.0.1:8786")
    assert parse_args(["--dask-address", "tcp://127.0.0.1:9999"]).dask_address == "tcp://127.0.0.1:9999"
    monkeypatch.setenv("TAXI_DASK_ADDRESS", "")
    assert parse_args(["--runner", "dask"]).dask_address is None
    with pytest.raises(SystemExit):
        parse_args(["--runner", "processes"])
