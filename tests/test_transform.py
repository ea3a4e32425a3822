"""transform: derived columns, on both engines."""

from __future__ import annotations

from datetime import datetime

import pytest

from tasks.schema import TRIPS_SCHEMA
from tests.engines import add_derived_columns
from tests.factories import trips


@pytest.mark.parametrize("engine", ["polars", "pandas"])
def test_derived_columns(engine, zones):
    table = trips(
        {},  # Friday 2025-01-10 08:00, 3 miles in 15 minutes, tip 4 of 25
        {"pickup_datetime": datetime(2025, 1, 12, 23, 30), "dropoff_datetime": datetime(2025, 1, 13, 0, 0)},
        {"total_amount": 0.0, "tip_amount": None},
    )
    out = add_derived_columns(table, zones, engine)
    assert out.schema == TRIPS_SCHEMA
    assert out["trip_duration_min"].to_pylist() == pytest.approx([15.0, 30.0, 15.0])
    assert out["avg_speed_mph"].to_pylist() == pytest.approx([12.0, 6.0, 12.0])
    assert out["tip_fraction"].to_pylist() == pytest.approx([0.16, 0.16, 0.0])
    assert out["pickup_date"][1].as_py().isoformat() == "2025-01-12"
    assert out["pickup_hour"].to_pylist() == [8, 23, 8]
    assert out["pickup_weekday"].to_pylist() == [5, 7, 5]  # ISO: Friday 5, Sunday 7
    assert out["pu_zone"][0].as_py() == "JFK Airport"
    assert out["do_zone"][0].as_py() == "LaGuardia Airport"
    assert out["pu_borough"][0].as_py() == "Queens"


@pytest.mark.parametrize("engine", ["polars", "pandas"])
def test_tip_fraction_is_finite_even_on_zero_and_negative_totals(engine, zones):
    out = add_derived_columns(trips({"total_amount": 0.0}, {"total_amount": -5.0}), zones, engine)
    assert out["tip_fraction"].to_pylist() == [0.0, 0.0]
    overflowing = add_derived_columns(trips({"tip_amount": 1e300, "total_amount": 1e-10}), zones, engine)
    assert overflowing["tip_fraction"].to_pylist() == [None]


# 2025-11-02: at 02:00 EDT clocks fell back to 01:00 EST. 2025-03-09: at 02:00 EST clocks sprang to 03:00 EDT.
DST_TRIPS = {
    "fall back, 01:50 EDT -> 01:05 EST": ((2025, 11, 2, 1, 50), (2025, 11, 2, 1, 5), 15.0),
    "fall back, inside the first 01:00 hour": ((2025, 11, 2, 1, 10), (2025, 11, 2, 1, 50), 40.0),
    "fall back, 00:30 EDT -> 02:10 EST": ((2025, 11, 2, 0, 30), (2025, 11, 2, 2, 10), 160.0),
    "spring forward, 01:50 EST -> 03:10 EDT": ((2025, 3, 9, 1, 50), (2025, 3, 9, 3, 10), 20.0),
    "spring forward, from the skipped 02:30": ((2025, 3, 9, 2, 30), (2025, 3, 9, 3, 45), 15.0),
    "spring forward, into the skipped 02:10": ((2025, 3, 9, 1, 55), (2025, 3, 9, 2, 10), 15.0),
    "an ordinary night": ((2025, 1, 10, 1, 50), (2025, 1, 10, 2, 10), 20.0),
}


@pytest.mark.parametrize("engine", ["polars", "pandas"])
def test_durations_are_between_real_instants_across_dst(engine, zones):
    rows = [
        {"pickup_datetime": datetime(*pickup), "dropoff_datetime": datetime(*dropoff), "trip_distance": 2.0}
        for pickup, dropoff, _ in DST_TRIPS.values()
    ]
    out = add_derived_columns(trips(*rows), zones, engine)
    minutes = dict(zip(DST_TRIPS, out["trip_duration_min"].to_pylist(), strict=True))
    assert minutes == pytest.approx({name: expected for name, (_, _, expected) in DST_TRIPS.items()})
    speeds = dict(zip(DST_TRIPS, out["avg_speed_mph"].to_pylist(), strict=True))
    assert speeds["spring forward, 01:50 EST -> 03:10 EDT"] == pytest.approx(6.0)  # 2 miles in 20 minutes
    assert out["pickup_hour"].to_pylist()[0] == 1  # calendar parts stay on the wall clock
