"""Lesson 7 (`flows/monitoring.py`): what it reads back from the API is what the run it started recorded."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.monitoring import ARTIFACT_KEY, monitoring_lesson
from tasks import settings
from tasks.lake import read_month
from tasks.months import Month

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


def test_the_lesson_reads_back_each_months_figures_events_and_the_bottleneck(tmp_path):
    outcome = monitoring_lesson(service="green", last_runs=3, output=str(tmp_path / "lake"))
    months = {row["month"]: row for row in outcome["tasks"] if row["task"] == "etl-month"}
    assert sorted(months) == list(settings.SAMPLE_MONTHS)
    for month, row in months.items():
        written = read_month(str(tmp_path / "lake"), "green", Month.parse(month))
        assert (
            row["rows_out"] == written["trips"].num_rows and row["rows_quarantined"] == written["quarantine"].num_rows
        )
        assert row["rows_in"] == settings.SAMPLE_ROWS["green"] and row["wall_seconds"] > 0 and row["peak_rss_bytes"] > 0
    loaded = {event["resource"] for event in outcome["events"] if event["event"] == "taxi.month.loaded"}
    assert loaded == {f"taxi.month.green.{month}" for month in settings.SAMPLE_MONTHS}
    assert outcome["bottleneck"] == "etl-month" and outcome["runs_read"] >= 1
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])))
    assert artifacts and "etl-month" in artifacts[0].description
