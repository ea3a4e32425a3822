"""Every real TLC file in ../shared/data/tlc through the `taxi_etl` flow (skipped when the folder is absent)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flows.etl import taxi_etl
from tasks.lake import read_month
from tasks.months import Month
from tasks.pipeline.extract import read_trip_file
from tasks.pipeline.plan import infer_month
from tasks.pipeline.zones import load_zone_table
from tasks.schema import TRIPS_SCHEMA, normalize_table
from tests.conftest import REAL_DATA
from tests.engines import add_derived_columns, split_valid
from tests.test_parity import assert_same_tables, run_pure

REAL_FILES = sorted(p.name for p in REAL_DATA.glob("*_tripdata_*")) if REAL_DATA.is_dir() else []
pytestmark = pytest.mark.realdata


def same_but_string_width(left: pa.Schema, right: pa.Schema) -> bool:
    def widen(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
        return [(f.name, pa.large_string() if f.type == pa.string() else f.type) for f in schema]

    return widen(left) == widen(right)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("name", REAL_FILES or ["(none)"])
def test_real_file_through_the_flow(real_data, name, tmp_path):
    service = "green" if name.startswith("green") else "yellow"
    summary = taxi_etl(
        service=service,
        source=str(real_data / name),
        output=str(tmp_path),
        zones=str(real_data / "taxi_zone_lookup.csv"),
    )
    (result,) = summary["months"]
    rows_in_file = read_trip_file(str(real_data / name)).num_rows
    assert result["rows_in"] == result["rows_clean"] + result["rows_quarantined"] == rows_in_file
    trips = read_month(str(tmp_path), service, Month.parse(result["month"]))["trips"]
    # Parquet stores one STRING type: polars' streaming sink records it as Arrow large_string, pyarrow as string.
    assert same_but_string_width(trips.schema, TRIPS_SCHEMA.remove(TRIPS_SCHEMA.get_field_index("service")))
    assert trips.num_rows == result["rows_clean"] > 0.9 * result["rows_in"]
    assert all(math.isfinite(x) for x in trips["tip_fraction"].to_pylist())
    month = Month.parse(result["month"])
    pickups = trips["pickup_datetime"]
    assert pc.min(pickups).as_py() >= month.start and pc.max(pickups).as_py() < month.end
    assert trips["pu_zone"].null_count == 0


@pytest.mark.parametrize("name", REAL_FILES or ["(none)"])
def test_engines_agree_on_real_files(real_data, name):
    zones = load_zone_table(str(real_data / "taxi_zone_lookup.csv"))
    service = "green" if name.startswith("green") else "yellow"
    source = str(real_data / name)
    args = (source, service, infer_month(source), zones.known_location_ids(), zones.table)
    polars_trips, polars_quarantine = run_pure(*args, "polars")
    pandas_trips, pandas_quarantine = run_pure(*args, "pandas")
    assert polars_quarantine.equals(pandas_quarantine)
    assert_same_tables(polars_trips, pandas_trips)


@pytest.mark.parametrize("engine", ["polars", "pandas"])
def test_trips_across_the_real_fall_back_night_are_clean(real_data, engine):
    """green 2025-11 holds trips picked up in the first 01:xx of 2025-11-02 and dropped off in the second, which
    the wall clock shows ending before they start. On real instants they last the wall difference plus an hour."""
    zones = load_zone_table()
    table = normalize_table(read_trip_file(str(real_data / "green_tripdata_2025-11.parquet")), "green")
    repeated_hour = (datetime(2025, 11, 2, 1), datetime(2025, 11, 2, 2))
    pickup, dropoff = table["pickup_datetime"], table["dropoff_datetime"]
    in_hour = pc.and_(
        pc.and_(pc.greater_equal(pickup, repeated_hour[0]), pc.less(pickup, repeated_hour[1])),
        pc.and_(pc.greater_equal(dropoff, repeated_hour[0]), pc.less(dropoff, pickup)),
    )
    crossing = table.filter(in_hour)
    assert crossing.num_rows >= 1  # two such trips in this file
    trips = add_derived_columns(crossing, zones.table, engine)
    expected = [
        (d - p + timedelta(hours=1)).total_seconds() / 60
        for p, d in zip(crossing["pickup_datetime"].to_pylist(), crossing["dropoff_datetime"].to_pylist(), strict=True)
    ]
    assert trips["trip_duration_min"].to_pylist() == pytest.approx(expected)
    clean, _ = split_valid(table, Month(2025, 11), zones.known_location_ids(), engine)
    clean_keys = set(zip(clean["pickup_datetime"].to_pylist(), clean["dropoff_datetime"].to_pylist(), strict=True))
    crossing_keys = zip(crossing["pickup_datetime"].to_pylist(), crossing["dropoff_datetime"].to_pylist(), strict=True)
    assert all(key in clean_keys for key in crossing_keys)
