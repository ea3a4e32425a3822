"""Validation rules, on both engines: each rule quarantines the row it names, and no row is ever lost."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from tasks.months import Month
from tasks.pipeline.engines import month_engine
from tasks.pipeline.rules import REASONS, RULES, InvariantError, check_row_invariant
from tasks.pipeline.zones import ZoneTable
from tests.engines import count_reasons, split_valid
from tests.factories import JAN_2025, trips

ENGINES = ["polars", "pandas"]
BROKEN = {
    "missing_value": {"total_amount": None},
    "pickup_outside_month": {
        "pickup_datetime": datetime(2024, 12, 31, 23, 50),
        "dropoff_datetime": datetime(2025, 1, 1, 0, 5),
    },
    "dropoff_not_after_pickup": {"dropoff_datetime": datetime(2025, 1, 10, 7, 59)},
    "implausible_duration": {"dropoff_datetime": datetime(2025, 1, 11, 8, 1)},
    "implausible_distance": {"trip_distance": -1.0},
    "implausible_speed": {"trip_distance": 40.0},  # 40 miles in 15 minutes
    "non_positive_total": {"total_amount": 0.0},
    "unknown_zone": {"do_location_id": 264},
}


def test_every_rule_has_a_case():
    assert set(BROKEN) == set(REASONS)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("reason", REASONS)
def test_rule_quarantines_its_row_with_its_reason(engine, reason, known_ids):
    clean, quarantine = split_valid(trips({}, BROKEN[reason]), JAN_2025, known_ids, engine)
    assert clean.num_rows == 1
    assert quarantine.column("reason").to_pylist() == [reason]


@pytest.mark.parametrize("engine", ENGINES)
def test_first_broken_rule_wins(engine, known_ids):
    row = {**BROKEN["non_positive_total"], **BROKEN["unknown_zone"], **BROKEN["missing_value"]}
    _, quarantine = split_valid(trips(row), JAN_2025, known_ids, engine)
    assert quarantine.column("reason").to_pylist() == ["missing_value"]


@pytest.mark.parametrize("engine", ENGINES)
def test_boundaries_of_the_month_and_zone_265(engine, known_ids):
    first_instant = {"pickup_datetime": datetime(2025, 1, 1), "dropoff_datetime": datetime(2025, 1, 1, 0, 10)}
    next_month = {"pickup_datetime": datetime(2025, 2, 1), "dropoff_datetime": datetime(2025, 2, 1, 0, 10)}
    outside_nyc = {"do_location_id": 265}
    clean, quarantine = split_valid(trips(first_instant, next_month, outside_nyc), JAN_2025, known_ids, engine)
    assert clean.num_rows == 2
    assert count_reasons(quarantine) == {"pickup_outside_month": 1}


@pytest.mark.parametrize("engine", ENGINES)
def test_null_optional_columns_do_not_quarantine(engine, known_ids):
    null_block = {"passenger_count": None, "ratecode_id": None, "store_and_fwd_flag": None, "payment_type": 0}
    clean, quarantine = split_valid(trips(null_block), JAN_2025, known_ids, engine)
    assert (clean.num_rows, quarantine.num_rows) == (1, 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_dst_nights_are_judged_on_real_instants(engine, known_ids):
    """November's repeated hour and March's skipped hour, on their own months."""
    fall_back = {"pickup_datetime": datetime(2025, 11, 2, 1, 50), "dropoff_datetime": datetime(2025, 11, 2, 1, 5)}
    backwards = {"pickup_datetime": datetime(2025, 11, 2, 1, 50), "dropoff_datetime": datetime(2025, 11, 2, 0, 30)}
    clean, quarantine = split_valid(trips(fall_back, backwards), Month(2025, 11), known_ids, engine)
    assert clean["dropoff_datetime"].to_pylist() == [fall_back["dropoff_datetime"]]
    assert quarantine["reason"].to_pylist() == ["dropoff_not_after_pickup"]
    # 23 miles from 01:50 EST to 03:10 EDT is 20 minutes (69 mph), not the 80 the wall clock shows (17 mph).
    spring = {"pickup_datetime": datetime(2025, 3, 9, 1, 50), "dropoff_datetime": datetime(2025, 3, 9, 3, 10)}
    fast, slow = {**spring, "trip_distance": 23.0}, {**spring, "trip_distance": 40.0}
    clean, quarantine = split_valid(trips(fast, slow), Month(2025, 3), known_ids, engine)
    assert clean["trip_distance"].to_pylist() == [23.0]
    assert quarantine["reason"].to_pylist() == ["implausible_speed"]


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_zone_means_borough_unknown_in_the_table_or_not_in_it(engine, zones):
    """What `unknown_zone`'s text says: the zone table's `Unknown` borough decides, not a hard-coded 264."""
    relabelled = zones.set_column(
        zones.schema.get_field_index("borough"),
        "borough",
        pa.array(
            [
                "Unknown" if i == 57 else "Queens" if i == 264 else b
                for i, b in zip(zones["location_id"].to_pylist(), zones["borough"].to_pylist(), strict=True)
            ]
        ),
    )
    known = ZoneTable(relabelled, "test").known_location_ids()
    rows = trips({"pu_location_id": 57}, {"pu_location_id": 264}, {"do_location_id": 300}, {"do_location_id": 265})
    clean, quarantine = split_valid(rows, JAN_2025, known, engine)
    assert clean["pu_location_id"].to_pylist() == [264, 132]
    assert quarantine["reason"].to_pylist() == ["unknown_zone", "unknown_zone"]
    assert "'Unknown'" in RULES[REASONS.index("unknown_zone")].description


def test_invariant_check_rejects_lost_rows():
    check_row_invariant(10, 7, 3, "ok")
    with pytest.raises(InvariantError, match="10 rows in but 7 clean"):
        check_row_invariant(10, 7, 2, "lost one")


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown engine 'spark': choose one of polars, pandas"):
        month_engine("spark")
