"""transform: derived columns, on both engines."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from tasks.schema import TRIPS_SCHEMA
from tasks.transform import add_derived_columns
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
    assert all(math.isfinite(v) for v in out["tip_fraction"].to_pylist())
