"""The `taxi_etl` flow against a real (temporary) Prefect server: outputs, artifact, command line, bad inputs."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.artifacts import Artifact

from flows.etl import main, taxi_etl
from tasks import settings
from tasks.lake import read_month
from tasks.months import Month
from tests.factories import written_rows
from tests.runs import log_messages_of, task_runs_of

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
SAMPLE = settings.SAMPLE_DIR / "green_tripdata_2025-01.parquet"


def test_sample_run_writes_every_month_and_publishes_a_summary(tmp_path):
    summary = taxi_etl(service="green", output=str(tmp_path))
    assert [m["month"] for m in summary["months"]] == list(settings.SAMPLE_MONTHS)
    for month in summary["months"]:
        assert month["rows_in"] == month["rows_clean"] + month["rows_quarantined"]
        assert month["rows_quarantined"] == sum(month["quarantined_by_reason"].values()) > 0
        month_task = next(
            row for row in summary["tasks"] if row["task"] == "etl-month" and row["month"] == month["month"]
        )
        assert month_task["wall_seconds"] > 0 and month_task["rows_in"] == month["rows_in"]
        assert written_rows(tmp_path, "green", month["month"]) == {
            "trips": month["rows_clean"],
            "quarantine": month["rows_quarantined"],
        }
    assert summary["zones_origin"].startswith("TLC zone table shipped")
    artifact = Artifact.get("taxi-etl-green")
    assert "| 2025-01 | 10,000 |" in artifact.data


def test_rerun_gives_the_same_result(tmp_path):
    first = taxi_etl(service="green", months=["2025-01"], source=str(SAMPLE), output=str(tmp_path))
    written = read_month(str(tmp_path), "green", Month(2025, 1))
    second = taxi_etl(service="green", months=["2025-01"], source=str(SAMPLE), output=str(tmp_path))
    assert read_month(str(tmp_path), "green", Month(2025, 1))["trips"].equals(written["trips"])
    assert first["months"][0]["outputs"] == second["months"][0]["outputs"]


def test_http_source(tmp_path, http_root):
    folder, base_url = http_root
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    summary = taxi_etl(service="green", source=f"{base_url}/{SAMPLE.name}", output=str(tmp_path))
    assert summary["months"][0]["rows_in"] == pq.read_metadata(SAMPLE).num_rows


def _without_total(path):
    pq.write_table(pq.read_table(SAMPLE).drop_columns(["total_amount"]), path)


def _truncated(path):
    path.write_bytes(SAMPLE.read_bytes()[:5000])


def _empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("make_bad_file", "message"),
    [
        (_without_total, "missing required column(s) total_amount"),
        (_truncated, "corrupt or truncated parquet"),
        (_empty, "file is empty"),
    ],
    ids=["missing-column", "truncated", "empty"],
)
def test_bad_file_fails_the_run_with_its_name_and_writes_nothing(tmp_path, make_bad_file, message):
    bad = tmp_path / "green_tripdata_2025-01.parquet"
    make_bad_file(bad)
    state = taxi_etl(service="green", source=str(bad), output=str(tmp_path / "out"), return_state=True)
    assert state.is_failed()
    assert message in state.message and str(bad) in state.message
    assert not (tmp_path / "out").exists()


def test_http_404_fails_the_run_without_retrying(tmp_path, http_root):
    _, base_url = http_root
    url = f"{base_url}/green_tripdata_2025-01.parquet.missing"
    state = taxi_etl(service="green", months=["2025-01"], source=url, output=str(tmp_path), return_state=True)
    assert state.is_failed()
    assert f"{url}: HTTP 404 Not Found" in state.message
    assert not any(tmp_path.iterdir())
    (month_run,) = [run for run in task_runs_of(state) if run.name == "month-green-2025-01"]
    assert month_run.run_count == 1  # a 404 is final: the retry condition declines it


def test_malformed_month_fails_before_any_work(tmp_path):
    state = taxi_etl(service="green", months=["2025-13"], output=str(tmp_path), return_state=True)
    assert state.is_failed() and "malformed month '2025-13'" in state.message


def test_command_line_runs_the_sample_for_both_services(tmp_path, capsys):
    assert main(["--output", str(tmp_path), "--engine", "pandas"]) == 0
    printed = capsys.readouterr().out
    assert "taxi_etl: yellow, engine pandas" in printed and "taxi_etl: green, engine pandas" in printed
    trips = pa.dataset.dataset(tmp_path / "trips", partitioning="hive").to_table()
    assert set(trips["service"].to_pylist()) == {"yellow", "green"}


def test_command_line_reports_errors(tmp_path, capsys):
    assert main(["--month", "2025-1", "--source", str(SAMPLE), "--output", str(tmp_path)]) == 1
    assert "malformed month '2025-1'" in capsys.readouterr().err


def test_a_row_per_month_in_the_ui(tmp_path):
    """Each month is one task run named after it (the UI's row), next to the run's own steps."""
    state = taxi_etl(service="green", output=str(tmp_path), return_state=True)
    runs = task_runs_of(state)
    month_runs = sorted(run.name for run in runs if run.name.startswith("month-"))
    assert month_runs == [f"month-green-{month}" for month in settings.SAMPLE_MONTHS]
    assert all(run.state.is_completed() for run in runs)
    assert "publish-summary-green" in {run.name for run in runs}


def test_months_that_cannot_start_fail_the_run_with_the_reason(tmp_path):
    """No zone table, no months: the run fails before submitting them and its state says why."""
    missing = tmp_path / "no_zones.csv"
    state = taxi_etl(service="green", output=str(tmp_path / "out"), zones=str(missing), return_state=True)
    assert state.is_failed()
    assert f"{missing}: no such zone table file" in state.message
    assert not (tmp_path / "out").exists()


def test_a_failed_month_logs_one_traceback_and_still_publishes_the_summary(tmp_path):
    bad = tmp_path / "green_tripdata_2025-01.parquet"
    _without_total(bad)  # normalize fails: a task without retries, which logs its own traceback
    state = taxi_etl(service="green", source=str(bad), output=str(tmp_path / "out"), return_state=True)
    assert state.is_failed() and "green 2025-01" in state.message
    messages = log_messages_of(state.state_details.flow_run_id, until="Finished in state Failed")
    assert sum(message.count("Traceback (most recent call last)") for message in messages) == 1, messages
    assert "missing required column(s) total_amount" in Artifact.get("taxi-etl-green").data


def test_the_sample_never_lands_in_the_lake(tmp_path, monkeypatch):
    lake, sample_root = tmp_path / "lake", tmp_path / "sample"
    monkeypatch.setenv("TAXI_OUTPUT_ROOT", str(lake))
    monkeypatch.setattr(settings, "SAMPLE_OUTPUT_ROOT", str(sample_root))
    summary = taxi_etl(service="green")
    assert summary["output_root"] == str(sample_root)
    assert written_rows(sample_root, "green", "2025-01")["trips"] > 0
    assert not lake.exists()
