"""The perf report: its analysis on plain rows, and end to end on real taxi_etl runs, one slowed on purpose."""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
from http.server import ThreadingHTTPServer

import numpy as np
import pytest

from tasks import settings
from tasks.observe.perf_history import (
    TaskRunRow,
    assign_lanes,
    busy_seconds,
    percentile,
    quarantine_by_month,
    regressions,
    step_of,
    step_stats,
)
from tests.conftest import QuietHandler


def row(run: str, run_started: float, step: str, started: float, seconds: float, run_seconds: float = 10.0, **kw):
    return TaskRunRow(
        flow_run_id=run,
        flow_run_name=f"name-{run}",
        run_started=run_started,
        run_seconds=run_seconds,
        step=step,
        task_run=kw.pop("task_run", f"{step}-{started}"),
        state="COMPLETED",
        started=started,
        seconds=seconds,
        **kw,
    )


def test_step_is_the_task_function_whatever_the_run_name():
    assert step_of("etl_month-1a2b3c4d") == "etl-month"
    assert step_of("publish_summary-9f8e7d6c") == "publish-summary"
    assert step_of("load_zones") == "load-zones"


def test_busy_seconds_counts_overlapping_months_once():
    assert busy_seconds([(0, 10), (0, 10)]) == 10
    assert busy_seconds([(0, 4), (2, 6), (8, 9)]) == 7
    assert busy_seconds([]) == 0


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.95, 1.0])
def test_percentile_matches_numpy(fraction):
    values = [3.0, 1.0, 7.5, 2.25, 9.0, 4.0]
    assert percentile(values, fraction) == pytest.approx(np.percentile(values, fraction * 100))


def test_share_of_wall_time_and_bottleneck():
    rows = [
        row("a", 0, "load-zones", 0, 1),
        row("a", 0, "etl-month", 1, 6, task_run="month-yellow-2025-01"),
        row("a", 0, "etl-month", 1, 8, task_run="month-yellow-2025-02"),
        row("a", 0, "publish-summary", 9, 0.5),
    ]
    stats = {s.step: s for s in step_stats(rows)}
    assert stats["etl-month"].latest_share == pytest.approx(0.8)  # 1..9 of 10 s: the two months overlap
    assert stats["etl-month"].max_seconds == 8 and stats["etl-month"].task_runs == 2
    assert step_stats(rows)[0].step == "etl-month"


def test_a_step_slower_than_its_rolling_median_is_flagged_in_its_run_only():
    steady = [2.0, 2.2, 1.9, 2.1]
    rows = [row(f"r{i}", i * 100, "etl-month", i * 100, s) for i, s in enumerate([*steady, 5.0, 2.0])]
    rows += [row(f"r{i}", i * 100, "publish-summary", i * 100 + 5, 0.05 * (i + 1)) for i in range(6)]
    found = regressions(rows, window=3, factor=1.5)
    assert [(r.step, r.flow_run_id) for r in found] == [("etl-month", "r4")]  # publish-summary: 0.3 s is no news
    assert found[0].baseline_seconds == pytest.approx(2.1) and found[0].ratio == pytest.approx(5.0 / 2.1)


def test_no_regression_without_history():
    rows = [row("r0", 0, "etl-month", 0, 1.0), row("r1", 100, "etl-month", 100, 9.0)]
    assert regressions(rows) == []


def test_months_side_by_side_get_their_own_lane():
    rows = [row("a", 0, "etl-month", 0, 5), row("a", 0, "etl-month", 1, 5), row("a", 0, "etl-month", 6, 1)]
    assert [r.lane for r in assign_lanes(rows)] == ["slot 1", "slot 2", "slot 1"]
    on_workers = [row("a", 0, "etl-month", 0, 5, worker="tcp://127.0.0.1:1")]
    assert assign_lanes(on_workers)[0].lane == "tcp://127.0.0.1:1"


def test_quarantine_by_month_and_reason_from_metrics_records():
    records = [
        {"service": "yellow", "month": "2025-01", "state": "COMPLETED", "rows_in": 1000, "started_at": 1,
         "quarantined_by_reason": json.dumps({"negative_fare": 30, "unknown_zone": 10})},
        {"service": "yellow", "month": "2025-01", "state": "COMPLETED", "rows_in": 1000, "started_at": 2,
         "quarantined_by_reason": json.dumps({"negative_fare": 20})},  # rerun: the newest wins
        {"service": "", "month": "", "task": "publish-summary", "rows_in": 0, "quarantined_by_reason": "{}"},
    ]  # fmt: skip
    assert quarantine_by_month(records) == [
        {"service": "yellow", "month": "2025-01", "reason": "negative_fare", "rows": 20, "rate": 0.02}
    ]


# End to end: real taxi_etl runs on the session's Prefect server, the last one reading its month from a slow mirror.

SLOW_MIRROR_SECONDS = 6.0


class SlowHandler(QuietHandler):
    """Serves files as a slow mirror would: the body in 12 pieces over `SLOW_MIRROR_SECONDS`."""

    def copyfile(self, source, outputfile):
        data = source.read()
        pieces = 12
        size = -(-len(data) // pieces)
        for start in range(0, len(data), size):
            time.sleep(SLOW_MIRROR_SECONDS / pieces)  # before each piece: the last byte leaves after every pause
            outputfile.write(data[start : start + size])


@pytest.fixture
def slow_mirror(tmp_path):
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copy(settings.SAMPLE_DIR / "yellow_tripdata_2025-01.parquet", folder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SlowHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.flow
def test_report_names_the_slowed_step_as_bottleneck_and_flags_it(prefect_server, slow_mirror, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    from flows.etl import taxi_etl
    from flows.perf_report import perf_report

    local = str(settings.SAMPLE_DIR / "yellow_tripdata_2025-01.parquet")
    runs = []
    for source in [local, local, local, f"{slow_mirror}/yellow_tripdata_2025-01.parquet"]:
        state = taxi_etl(service="yellow", months=["2025-01"], source=source, output=str(tmp_path / "lake"),
                         return_state=True)  # fmt: skip
        assert state.is_completed(), state.message
        runs.append(state.state_details.flow_run_id)
    with get_client(sync_client=True) as client:  # the metrics helper's artifact, as the contract defines it
        record = {"flow": "taxi_etl", "flow_run_id": str(runs[-1]), "task": "etl-month", "month": "2031-07",
                  "service": "yellow", "state": "COMPLETED", "rows_in": 400, "started_at": time.time(),
                  "quarantined_by_reason": json.dumps({"unknown_zone": 8})}  # fmt: skip
        client.create_artifact(
            ArtifactCreate(key="taxi-task-metrics", type="table", data=json.dumps([record]), flow_run_id=runs[-1])
        )

    result = perf_report(last_runs=4, output_dir=str(tmp_path / "report"))

    assert result["runs"] == 4 and result["latest_run"] == str(runs[-1])
    assert result["bottleneck"] == "etl-month", result["steps"]
    # Only the slowed step is asserted: on a busy machine another step may wobble past its median too.
    flagged = [r for r in result["regressions"] if r["flow_run_id"] == str(runs[-1]) and r["step"] == "etl-month"]
    assert len(flagged) == 1, (result["regressions"], (tmp_path / "report" / "task-runs.csv").read_text())
    month = flagged[0]
    assert month["seconds"] >= SLOW_MIRROR_SECONDS and month["ratio"] > 1.5
    report = (tmp_path / "report" / "perf-report.md").read_text()
    assert "**Bottleneck: `etl-month`**" in report
    assert "| yellow | 2031-07 | unknown_zone | 8 | 2.00% |" in report
    for name in ("task-runs.csv", "gantt-latest.png", "trend.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    csv_text = (tmp_path / "report" / "task-runs.csv").read_text()
    assert csv_text.count("month-yellow-2025-01") == 4 and "publish-summary-yellow" in csv_text
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        published = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["perf-report"])))
    assert any("Bottleneck: `etl-month`" in str(artifact.data) for artifact in published)


def test_markdown_links_dask_reports_and_says_when_quarantine_figures_are_missing():
    from tasks.observe.perf_history import History
    from tasks.observe.perf_markdown import render_report

    rows = [row("a", 0, "etl-month", 0, 5), row("a", 0, "publish-summary", 5, 0.2)]
    links = {"dask-performance-report": "file:///tmp/dask-report.html", "dask-dashboard": "http://127.0.0.1:8787"}
    history = History(rows=rows, links=links, runs=1)
    markdown = render_report(history, step_stats(rows), [], "a", {"gantt": "gantt-latest.png"}, window=5, factor=1.5)
    assert "Dask performance report: file:///tmp/dask-report.html" in markdown
    assert "Dask dashboard: http://127.0.0.1:8787" in markdown
    assert "![gantt](gantt-latest.png)" in markdown
    assert "No run carried the `taxi-task-metrics` artifact" in markdown
    assert "No finished run" in render_report(History(), [], [], "", {}, window=5, factor=1.5)


def test_untracked_share_is_the_wall_time_outside_every_task_run():
    from tasks.observe.perf_history import untracked_share

    rows = [row("a", 0, "load-zones", 1, 1), row("a", 0, "etl-month", 2, 5), row("a", 0, "etl-month", 3, 5)]
    assert untracked_share(rows, "a") == pytest.approx(0.3)  # busy 1..8 of 10 s
