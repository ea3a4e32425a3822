"""Guards against a user's mistake destroying data: the wrong month or the wrong service is refused, not loaded."""

from __future__ import annotations

from datetime import datetime

import pyarrow.parquet as pq
import pytest

from flows.etl import main
from tasks import settings
from tasks.months import Month
from tasks.pipeline.extract import read_trip_file
from tasks.pipeline.validate import WrongMonthError, check_month_matches
from tasks.schema import ServiceMismatchError, normalize_table
from tests.engines import split_valid
from tests.factories import JAN_2025, trips

DECEMBER = {"pickup_datetime": datetime(2024, 12, 31, 23, 0), "dropoff_datetime": datetime(2024, 12, 31, 23, 20)}
NOVEMBER = {"pickup_datetime": datetime(2024, 11, 5, 9, 0), "dropoff_datetime": datetime(2024, 11, 5, 9, 20)}
NO_PICKUP = {"pickup_datetime": None}
SAMPLE_GREEN_JAN = settings.SAMPLE_SOURCE.format(service="green", month="2025-01")
REAL_FILES = {
    "green_tripdata_2023-01.parquet": ("green", "2023-01"),
    "green_tripdata_2025-11.parquet": ("green", "2025-11"),
    "yellow_tripdata_2025-02_random5000.parquet": ("yellow", "2025-02"),
}


def test_stray_rows_stay_a_row_level_matter(known_ids):
    clean, quarantine = split_valid(trips({}, {}, DECEMBER), JAN_2025, known_ids)
    assert (clean.num_rows, quarantine["reason"].to_pylist()) == (2, ["pickup_outside_month"])


def test_a_file_mostly_in_other_months_is_refused_naming_them(known_ids):
    table = trips({}, DECEMBER, DECEMBER, NOVEMBER, NO_PICKUP)
    expected = r"3 of 4 pickups \(75%\).*2024-12 \(2 rows\), 2024-11 \(1 row\), 2025-01"
    with pytest.raises(WrongMonthError, match=expected):
        split_valid(table, JAN_2025, known_ids)


def test_the_threshold_is_the_setting(monkeypatch):
    half_outside = trips({}, DECEMBER)
    check_month_matches(half_outside, JAN_2025)  # 50% is not "mostly"
    monkeypatch.setattr("tasks.pipeline.validate.MAX_SHARE_OUTSIDE_MONTH", 0.4)
    with pytest.raises(WrongMonthError):
        check_month_matches(half_outside, JAN_2025)


def test_rows_without_pickups_or_no_rows_are_left_to_the_rules():
    check_month_matches(trips(NO_PICKUP, NO_PICKUP), JAN_2025)
    check_month_matches(trips(), JAN_2025)


def test_green_sample_is_refused_as_yellow_and_yellow_as_green():
    with pytest.raises(ServiceMismatchError, match=r"lpep_pickup_datetime.*green taxi columns.*for yellow"):
        normalize_table(read_trip_file(SAMPLE_GREEN_JAN), "yellow", "green.parquet")
    yellow = read_trip_file(settings.SAMPLE_SOURCE.format(service="yellow", month="2025-01"))
    with pytest.raises(ServiceMismatchError, match=r"tpep_pickup_datetime.*yellow taxi columns.*for green"):
        normalize_table(yellow, "green", "yellow.parquet")


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_files_are_refused_for_the_other_service_and_another_month(real_data, name, known_ids):
    service, month = REAL_FILES[name]
    raw = read_trip_file(str(real_data / name))
    other = next(s for s in settings.SERVICES if s != service)
    with pytest.raises(ServiceMismatchError, match=f"are {service} taxi columns"):
        normalize_table(raw, other, name)
    table = normalize_table(raw, service, name)
    with pytest.raises(WrongMonthError, match=f"the file holds {month} "):
        split_valid(table, Month(2024, 5), known_ids)
    clean, _ = split_valid(table, Month.parse(month), known_ids)
    assert clean.num_rows > 0.9 * table.num_rows


@pytest.mark.realdata
def test_a_mirror_without_service_columns_is_accepted_for_either(real_data):
    """The 2019 snake_case CSV has no `tpep_`/`lpep_`, `trip_type` or `ehail_fee`: nothing tells its service."""
    raw = read_trip_file(str(real_data / "yellow_tripdata_sample_2019-01.csv"))
    assert normalize_table(raw, "yellow").num_rows == normalize_table(raw, "green").num_rows == raw.num_rows


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_wrong_month_on_the_command_line_leaves_the_partition_alone(tmp_path, capsys):
    february = settings.SAMPLE_SOURCE.format(service="green", month="2025-02")
    assert main(["--source", february, "--month", "2025-02", "--output", str(tmp_path)]) == 0
    written = sorted(tmp_path.rglob("*.parquet"))
    before = {path: pq.read_table(path) for path in written}
    assert main(["--source", SAMPLE_GREEN_JAN, "--month", "2025-02", "--output", str(tmp_path)]) == 1
    assert "the file holds 2025-01" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*.parquet")) == written
    assert all(pq.read_table(path).equals(table) for path, table in before.items())


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_wrong_service_on_the_command_line_writes_nothing(tmp_path, capsys):
    assert main(["--source", SAMPLE_GREEN_JAN, "--service", "yellow", "--output", str(tmp_path)]) == 1
    assert "green taxi columns" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.parquet"))


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_an_unreachable_zone_download_stops_the_run_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """`--zones tlc` offline: an error naming the shipped copy, never a made-up zone table."""
    monkeypatch.setattr(settings, "TLC_ZONES_URL", "http://127.0.0.1:9/taxi_zone_lookup.csv")  # nothing answers
    assert main(["--source", SAMPLE_GREEN_JAN, "--zones", "tlc", "--output", str(tmp_path)]) == 1
    assert "TLC zone table unreachable" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.parquet"))
