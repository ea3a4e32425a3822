"""Months and run plans: malformed input fails before any work, with a message that says what to change."""

from __future__ import annotations

import logging
import socket
import warnings
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tasks import settings
from tasks.months import Month, MonthFormatError, latest_published
from tasks.pipeline.extract import SourceError
from tasks.pipeline.plan import plan_months, plan_run
from tasks.retries import is_transient
from tasks.schema import NEW_YORK

SAMPLE_YELLOW = settings.SAMPLE_DIR / "yellow_tripdata_2025-01.parquet"


@pytest.mark.parametrize("text", ["2025-13", "2025-1", "25-01", "2025/01", "2008-12", "", "january"])
def test_malformed_months_are_rejected(text):
    with pytest.raises(MonthFormatError, match="malformed month"):
        Month.parse(text)


def test_month_window_wraps_the_year():
    december = Month.parse("2024-12")
    assert (str(december.start), str(december.end)) == ("2024-12-01 00:00:00", "2025-01-01 00:00:00")


def test_no_arguments_means_the_committed_sample():
    plan = plan_months("green", None, None)
    assert [str(m) for m, _ in plan] == list(settings.SAMPLE_MONTHS)
    assert plan[0][1].endswith("data/sample/green_tripdata_2025-01.parquet")


def test_months_without_source_use_tlc_urls_sorted_and_deduplicated():
    plan = plan_months("yellow", ["2024-03", "2024-01", "2024-03"], None)
    assert [url for _, url in plan] == [
        "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_2024-01.parquet",
        "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_2024-03.parquet",
    ]


def test_single_file_month_from_its_name_or_given():
    assert plan_months("green", None, "/x/green_tripdata_2023-01.parquet")[0][0] == Month(2023, 1)
    assert plan_months("green", ["2023-02"], "/x/trips.csv")[0][0] == Month(2023, 2)
    with pytest.raises(MonthFormatError, match="no YYYY-MM in the file name"):
        plan_months("green", None, "/x/trips.csv")
    with pytest.raises(ValueError, match="one file cannot serve 2 months"):
        plan_months("green", ["2023-01", "2023-02"], "/x/trips.csv")


def test_template_source():
    plan = plan_months("yellow", ["2023-01"], "s3://b/{year}/{service}_{mm}.parquet")
    assert plan[0][1] == "s3://b/2023/yellow_01.parquet"


def test_unknown_service():
    with pytest.raises(ValueError, match="unknown service 'blue'"):
        plan_months("blue", None, None)


@pytest.mark.parametrize(
    ("now", "expected"),
    [("2026-11-21", "2026-09"), ("2026-02-05", "2025-12"), ("2026-01-31", "2025-11"), ("2025-03-01", "2025-01")],
)
def test_the_calendar_suggests_now_minus_the_publication_delay(now, expected):
    assert str(latest_published(datetime.fromisoformat(now), settings.PUBLICATION_DELAY_MONTHS)) == expected


# `latest` against a local HTTP server: the files present are the months "published".

NOW = datetime(2026, 11, 21)  # the calendar suggests 2026-09


@pytest.fixture
def published(http_root, tmp_path):
    """`publish(*months)` puts empty yellow files for those months on the HTTP server; returns the template.

    `publish.folder` is the served folder, for a test that needs a real file there.
    """
    folder, base_url = http_root
    site = folder / tmp_path.name  # a folder of its own on the session-wide server

    def publish(*months: str) -> str:
        for month in months:
            (site / f"yellow_tripdata_{month}.parquet").write_bytes(b"")
        return f"{base_url}/{site.name}/{{service}}_tripdata_{{month}}.parquet"

    site.mkdir()
    publish.folder = site
    return publish


def test_latest_is_the_suggested_month_when_it_is_published(published):
    template = published("2026-08", "2026-09")
    plan = plan_run("yellow", ["latest"], template, now=NOW)
    assert [(str(m), uri) for m, uri in plan.months] == [
        ("2026-09", template.format(service="yellow", month="2026-09"))
    ]
    assert [(str(c.month), c.answer) for c in plan.latest.checks] == [("2026-09", "HTTP 200")]


def test_latest_steps_back_when_the_suggested_month_is_not_out_yet(published, caplog):
    template = published("2026-06", "2026-07")
    caplog.set_level(logging.INFO, logger="tasks.pipeline.publication")
    plan = plan_run("yellow", ["latest", "2026-01"], template, now=NOW)
    assert [str(m) for m, _ in plan.months] == ["2026-01", "2026-07"]
    assert [(str(c.month), c.published, c.answer) for c in plan.latest.checks] == [
        ("2026-09", False, "HTTP 404"),
        ("2026-08", False, "HTTP 404"),
        ("2026-07", True, "HTTP 200"),
    ]
    why = plan.latest.describe()
    assert why.startswith("latest = 2026-07 (the calendar suggested 2026-09)")
    assert "2026-09 not published yet (HTTP 404)" in why
    assert why in caplog.messages


def test_latest_gives_up_after_the_lookback_bound(published, monkeypatch):
    template = published("2026-05")  # four months before the suggestion: one too many
    monkeypatch.setattr(settings, "LATEST_LOOKBACK_MONTHS", 2)
    with pytest.raises(SourceError, match="no yellow file is published for any month from 2026-09 back to 2026-07"):
        plan_run("yellow", ["latest"], template, now=NOW)
    monkeypatch.setattr(settings, "LATEST_LOOKBACK_MONTHS", 4)
    assert plan_run("yellow", ["latest"], template, now=NOW).latest.month == Month(2026, 5)


def test_a_plain_month_is_never_checked_but_latest_fails_when_it_cannot_tell():
    with socket.socket() as probe:  # a port nothing listens on: any request to it fails
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/{{service}}_tripdata_{{month}}.parquet"
    plan = plan_run("yellow", ["2026-09"], dead, now=NOW)
    assert [str(m) for m, _ in plan.months] == ["2026-09"] and plan.latest is None
    with pytest.raises(SourceError, match="cannot tell whether it is published") as error:
        plan_run("yellow", ["latest"], dead, now=NOW)
    assert is_transient(error.value)  # refused connection: not a reason to fall back to an older month


def test_latest_on_a_local_template(tmp_path):
    (tmp_path / "green_tripdata_2026-08.parquet").write_bytes(b"")
    plan = plan_run("green", ["latest"], str(tmp_path / "{service}_tripdata_{month}.parquet"), now=NOW)
    assert plan.latest.describe() == (
        "latest = 2026-08 (the calendar suggested 2026-09): 2026-09 not published yet (no such file); "
        "2026-08 published (found)"
    )


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_scheduled_latest_run_processes_the_chosen_month_and_logs_why(published, tmp_path):
    from zoneinfo import ZoneInfo

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from data.generate import write_month as generate_month
    from flows.etl import taxi_etl
    from tasks.schema import NEW_YORK

    suggested = latest_published(datetime.now(ZoneInfo(NEW_YORK)), settings.PUBLICATION_DELAY_MONTHS)
    one_back = latest_published(suggested.start, 1)  # the month before the suggested one
    template = published()
    generate_month("yellow", one_back, 2_000, published.folder)  # a file that holds that month's trips
    state = taxi_etl(service="yellow", months=["latest"], source=template, output=str(tmp_path), return_state=True)
    assert state.is_completed(), state.message
    assert [month["month"] for month in state.result()["months"]] == [str(one_back)]
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    assert any(
        log.message.startswith(f"latest = {one_back} (the calendar suggested {suggested}): {suggested} not published")
        for log in logs
    )


def test_the_scheduled_time_is_a_plain_new_york_datetime_with_no_deprecation_warning():
    """Outside a run Prefect answers `now` as a pendulum DateTime, as it answers a run's scheduled time: calling
    pendulum-specific behaviour on it warns on prefect 3.9 (`replace`), so the flow converts it first."""
    from prefect.runtime import flow_run

    from tasks.pipeline.plan import scheduled_time

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = scheduled_time(flow_run.scheduled_start_time)
    assert type(got) is datetime and got.tzinfo is None
    assert abs(got - datetime.now(ZoneInfo(NEW_YORK)).replace(tzinfo=None)) < timedelta(minutes=1)
