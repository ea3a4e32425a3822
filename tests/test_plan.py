"""Months and run plans: malformed input fails before any work, with a message that says what to change."""

from __future__ import annotations

import pytest

from tasks import settings
from tasks.months import Month, MonthFormatError
from tasks.plan import plan_months


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
def test_latest_published_month_follows_the_run_time(now, expected):
    from datetime import datetime

    plan = plan_months("yellow", ["latest"], None, now=datetime.fromisoformat(now))
    assert [str(month) for month, _ in plan] == [expected]
    assert plan[0][1].endswith(f"yellow_tripdata_{expected}.parquet")
