"""normalize: every TLC naming and typing variant maps onto the one canonical schema."""

from __future__ import annotations

import logging
from datetime import datetime

import pyarrow as pa
import pytest

from tasks.schema import CANONICAL_SCHEMA, SchemaError, canonical_name, normalize_table

MINIMAL = {
    "tpep_pickup_datetime": pa.array([datetime(2025, 1, 1, 8)], pa.timestamp("us")),
    "tpep_dropoff_datetime": pa.array([datetime(2025, 1, 1, 8, 10)], pa.timestamp("us")),
    "trip_distance": [1.0],
    "PULocationID": pa.array([132], pa.int32()),
    "DOLocationID": pa.array([138], pa.int32()),
    "total_amount": [12.5],
}


@pytest.mark.parametrize(
    ("source", "canonical"),
    [
        ("VendorID", "vendor_id"),
        ("vendor_id", "vendor_id"),
        ("lpep_pickup_datetime", "pickup_datetime"),
        ("pickup_datetime", "pickup_datetime"),
        ("RatecodeID", "ratecode_id"),
        ("rate_code_id", "ratecode_id"),
        ("pickup_location_id", "pu_location_id"),
        ("dropoff_location_id", "do_location_id"),
        ("Airport_fee", "airport_fee"),
        ("airport_fee", "airport_fee"),
        ("AIRPORT_FEE", "airport_fee"),
    ],
)
def test_aliases_and_case(source, canonical):
    assert canonical_name(source) == canonical


def test_minimal_file_gets_the_full_schema_with_typed_nulls():
    table = normalize_table(pa.table(MINIMAL), "yellow")
    assert table.schema == CANONICAL_SCHEMA
    assert table.column("airport_fee").null_count == 1
    assert table.column("service").to_pylist() == ["yellow"]


def test_codes_stored_as_double_become_nullable_integers():
    codes = {"RatecodeID": pa.array([1.0, None]), "passenger_count": pa.array([2.0, None]), "VendorID": [2, 7]}
    two_rows = {name: pa.concat_arrays([pa.array(col), pa.array(col)]) for name, col in MINIMAL.items()}
    table = normalize_table(pa.table({**two_rows, **codes}), "yellow")
    assert table.column("ratecode_id").to_pylist() == [1, None]
    assert table.column("passenger_count").type == pa.int32()
    assert table.column("vendor_id").to_pylist() == [2, 7]


def test_a_fractional_code_is_an_error_not_a_silent_truncation():
    with pytest.raises(SchemaError, match=r"f\.parquet: column 'payment_type'"):
        normalize_table(pa.table({**MINIMAL, "payment_type": [1.5]}), "yellow", "f.parquet")


def test_missing_required_column_names_the_file_and_column():
    without_total = {k: v for k, v in MINIMAL.items() if k != "total_amount"}
    with pytest.raises(SchemaError, match=r"bad\.parquet: missing required column\(s\) total_amount"):
        normalize_table(pa.table(without_total), "yellow", "bad.parquet")


def test_unknown_columns_are_dropped_with_a_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="tasks.schema"):
        green = {name.replace("tpep_", "lpep_"): column for name, column in MINIMAL.items()}
        table = normalize_table(pa.table({**green, "ehail_fee": pa.nulls(1)}), "green", "g.parquet")
    assert "ehail_fee" not in table.column_names
    assert "dropping columns outside the canonical schema: ehail_fee" in caplog.text


def test_text_timestamps_from_csv_and_timezone_aware_ones():
    text = {**MINIMAL, "tpep_pickup_datetime": ["2019-01-15 03:36:12"]}
    assert normalize_table(pa.table(text), "yellow")["pickup_datetime"][0].as_py() == datetime(2019, 1, 15, 3, 36, 12)
    utc = pa.array([datetime(2025, 1, 1, 13)], pa.timestamp("us", "UTC"))
    local = normalize_table(pa.table({**MINIMAL, "tpep_pickup_datetime": utc}), "yellow")
    assert local["pickup_datetime"][0].as_py() == datetime(2025, 1, 1, 8)  # New York is UTC-5 in January


def test_columns_folding_into_one_are_coalesced_when_they_agree_and_noted(caplog):
    agreeing = {"Airport_fee": pa.array([None, 1.75], pa.float64()), "airport_fee": [1.75, 1.75]}
    with caplog.at_level(logging.INFO, logger="tasks.schema"):
        table = normalize_table(pa.table({**TWO_ROWS, **agreeing}), "yellow", "f.parquet")
    assert table.column("airport_fee").to_pylist() == [1.75, 1.75]
    assert "columns 'Airport_fee' and 'airport_fee' both map to 'airport_fee' and agree on the 1 row(s)" in caplog.text


def test_columns_folding_into_one_that_disagree_refuse_the_file_naming_both():
    """A mirror with `total_amount` in dollars and `TOTAL_AMOUNT` in dimes: no rule can pick, summing is 10x off."""
    dimes = {"TOTAL_AMOUNT": [125.0, None]}
    expected = r"f\.parquet: columns 'total_amount' and 'TOTAL_AMOUNT' both map to 'total_amount' and disagree on 1 of"
    with pytest.raises(SchemaError, match=expected):
        normalize_table(pa.table({**TWO_ROWS, **dimes}), "yellow", "f.parquet")


def test_an_alias_and_its_canonical_name_fold_too():
    with pytest.raises(SchemaError, match=r"'PULocationID' and 'pickup_location_id' both map to 'pu_location_id'"):
        normalize_table(pa.table({**TWO_ROWS, "pickup_location_id": pa.array([132, 7], pa.int32())}), "yellow")
    same = normalize_table(pa.table({**TWO_ROWS, "pickup_location_id": [132.0, None]}), "yellow")
    assert same.column("pu_location_id").to_pylist() == [132, 132]


def test_text_times_are_read_in_one_format_or_refused():
    text = {**MINIMAL, "tpep_dropoff_datetime": ["2019-01-15 03:42:19"]}
    assert normalize_table(pa.table(text), "yellow")["dropoff_datetime"][0].as_py() == datetime(2019, 1, 15, 3, 42, 19)
    with pytest.raises(SchemaError, match="column 'tpep_dropoff_datetime' cannot become timestamp"):
        normalize_table(pa.table({**MINIMAL, "tpep_dropoff_datetime": ["15/01/2019 03:42"]}), "yellow")


TWO_ROWS = {name: pa.concat_arrays([pa.array(c), pa.array(c)]) for name, c in MINIMAL.items()}
