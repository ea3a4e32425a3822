"""Engine parity: polars and pandas produce the same rows and values on the committed sample."""

from __future__ import annotations

import logging
import warnings
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks import settings
from tasks.months import Month
from tasks.pipeline.extract import read_trip_file
from tasks.schema import CANONICAL_SCHEMA, SchemaError, normalize_table
from tests.engines import add_derived_columns, split_valid
from tests.factories import open_month

# polars quotients can differ from numpy's in the last bit (seen here on 13% of 1M random divisions).
FLOAT_TOLERANCE = 1e-12


def run_pure(source: str, service: str, month: Month, known_ids, zones, engine: str) -> tuple[pa.Table, pa.Table]:
    table = normalize_table(read_trip_file(source), service, source)
    clean, quarantine = split_valid(table, month, known_ids, engine)
    return add_derived_columns(clean, zones, engine), quarantine


def assert_same_tables(left: pa.Table, right: pa.Table) -> None:
    assert left.schema == right.schema
    assert left.num_rows == right.num_rows
    for name in left.column_names:
        a, b = left.column(name), right.column(name)
        if pa.types.is_floating(a.type):
            assert a.is_null().equals(b.is_null()), name
            np.testing.assert_allclose(
                a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False), rtol=FLOAT_TOLERANCE, err_msg=name
            )
        else:
            assert a.equals(b), name


@pytest.mark.parametrize("service", settings.SERVICES)
@pytest.mark.parametrize("month", settings.SAMPLE_MONTHS)
def test_polars_and_pandas_agree_on_the_sample(service, month, known_ids, zones):
    source = settings.SAMPLE_SOURCE.format(service=service, month=month)
    polars_trips, polars_quarantine = run_pure(source, service, Month.parse(month), known_ids, zones, "polars")
    pandas_trips, pandas_quarantine = run_pure(source, service, Month.parse(month), known_ids, zones, "pandas")
    assert polars_quarantine.equals(pandas_quarantine)
    assert_same_tables(polars_trips, pandas_trips)
    assert polars_quarantine.num_rows > 0 and polars_trips.num_rows > 0


# --- normalization: one mapping (tasks.schema.ColumnMapping), applied by the lazy plan and by pyarrow ---------------

BASE = {
    "tpep_pickup_datetime": pa.array([datetime(2025, 1, 1, 8), datetime(2025, 1, 2, 9)], pa.timestamp("us")),
    "tpep_dropoff_datetime": pa.array([datetime(2025, 1, 1, 8, 10), datetime(2025, 1, 2, 9, 30)], pa.timestamp("us")),
    "trip_distance": [1.0, 2.5],
    "PULocationID": pa.array([132, 138], pa.int32()),
    "DOLocationID": pa.array([138, 132], pa.int32()),
    "total_amount": [12.5, 30.0],
}
VARIANTS = {
    "agreeing-fold": {"TOTAL_AMOUNT": [12.5, None], "Airport_fee": [None, 1.75], "airport_fee": [1.75, 1.75]},
    "disagreeing-fold": {"TOTAL_AMOUNT": [125.0, 30.0]},
    "alias-fold": {"pickup_location_id": pa.array([132, 7], pa.int64())},
    "text-times": {"tpep_dropoff_datetime": ["2025-01-01 08:10:00", "2025-01-02 09:30:00"]},
    "unreadable-text-time": {"tpep_dropoff_datetime": ["2025-01-01 08:10:00", "01/02/2025 09:30"]},
    "zoned-and-nanosecond": {
        "tpep_pickup_datetime": pa.array([datetime(2025, 1, 1, 13), None], pa.timestamp("us", "UTC")),
        "tpep_dropoff_datetime": pa.array([datetime(2025, 1, 1, 8, 10), None], pa.timestamp("ns")),
    },
    "lossy-code": {"payment_type": [1.0, 1.5]},
    "unknown-columns": {"meter_id": pa.nulls(2, pa.float64()), "service": ["x", "y"]},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_lazy_plan_and_pyarrow_normalize_a_file_alike(variant, tmp_path, caplog):
    path = str(tmp_path / "variant.parquet")
    pq.write_table(pa.table({**BASE, **VARIANTS[variant]}), path)
    outcomes, notes = {}, {}
    for engine, normalize in {"polars": _normalized_by_the_plan, "pandas": _normalized_by_pyarrow}.items():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="tasks.schema"):
            try:
                outcomes[engine] = normalize(path)
            except SchemaError as error:
                outcomes[engine] = str(error)
        notes[engine] = [record.getMessage() for record in caplog.records]
    assert notes["polars"] == notes["pandas"]
    if isinstance(outcomes["pandas"], str):
        assert outcomes["polars"] == outcomes["pandas"]
    else:
        assert_same_tables(outcomes["polars"], outcomes["pandas"])
    refused = {"disagreeing-fold", "alias-fold", "unreadable-text-time", "lossy-code"}
    assert isinstance(outcomes["pandas"], str) == (variant in refused)


def _normalized_by_the_plan(path: str) -> pa.Table:
    with open_month(path, "yellow") as (frame, _):
        return frame.collect(engine="streaming").to_arrow().cast(CANONICAL_SCHEMA)


def _normalized_by_pyarrow(path: str) -> pa.Table:
    return normalize_table(read_trip_file(path), "yellow", path)


def test_quotients_too_large_for_a_float_are_judged_alike_and_warn_nothing(known_ids, zones):
    """A 1 us trip of 1e308 miles (its speed overflows) is quarantined as implausible, and a tip of 1e300 on a
    $1e-10 total (its fraction overflows) is written as a null fraction, by both engines, without numpy warnings."""
    table = pa.table(
        {
            **BASE,
            "tpep_dropoff_datetime": pa.array([datetime(2025, 1, 1, 8, 0, 0, 1), datetime(2025, 1, 2, 9, 30)]),
            "trip_distance": [1e308, 2.5],
            "total_amount": [12.5, 1e-10],
            "tip_amount": [0.0, 1e300],
        }
    )
    table = normalize_table(table, "yellow", "overflow.parquet")
    outcomes = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for engine in ("polars", "pandas"):
            clean, quarantine = split_valid(table, Month.parse("2025-01"), known_ids, engine)
            outcomes[engine] = add_derived_columns(clean, zones, engine), quarantine
    assert outcomes["polars"][1].equals(outcomes["pandas"][1])
    assert_same_tables(outcomes["polars"][0], outcomes["pandas"][0])
    assert outcomes["pandas"][1].column("reason").to_pylist() == ["implausible_distance"]
    assert outcomes["pandas"][0].column("tip_fraction").to_pylist() == [None]
