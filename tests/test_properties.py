"""Property-based tests: for any file drawn from the TLC schema, normalize and validate lose no row and the engines
agree. The draws include nulls, NaN, infinities, negative and huge values, codes stored as doubles, the DST nights
of the month, and stray months; each test runs a bounded number of examples so the file stays fast."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tasks.months import Month
from tasks.pipeline.validate import WrongMonthError, months_held
from tasks.schema import CANONICAL_SCHEMA, SchemaError, normalize_table
from tasks.settings import MAX_SHARE_OUTSIDE_MONTH
from tests.engines import add_derived_columns, get_engine, split_valid
from tests.test_parity import assert_same_tables

NOVEMBER = Month(2025, 11)  # holds the autumn DST change (2025-11-02 01:00-01:59 happens twice)
EXAMPLES = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def mostly(ordinary: st.SearchStrategy, *odd: st.SearchStrategy) -> st.SearchStrategy:
    """`ordinary` four times in five, else one of `odd`: clean rows need every rule to pass, so they must be
    common for the transform properties to see any, while the odd values still come often."""
    return st.one_of(ordinary, ordinary, ordinary, ordinary, st.one_of(*odd))


DST_EDGES = [datetime(2025, 11, 2, 0, 59), datetime(2025, 11, 2, 1, 0), datetime(2025, 11, 2, 1, 59, 59)]
in_november = st.datetimes(min_value=datetime(2025, 11, 1), max_value=datetime(2025, 11, 30, 23, 59))
timestamps = mostly(
    st.one_of(in_november, st.sampled_from(DST_EDGES)),
    st.none(),
    st.datetimes(min_value=datetime(2009, 1, 1), max_value=datetime(2030, 12, 31)),  # stray years
)
any_float = st.floats(allow_nan=True, allow_infinity=True)  # NaN, infinities, huge and tiny magnitudes
amounts = mostly(st.floats(1, 200), st.none(), any_float, st.floats(-100, 0))
distances = mostly(st.floats(0.1, 5), st.none(), any_float)
zone_ids = mostly(st.integers(1, 265), st.none(), st.integers(-(2**31), 2**31 - 1))
codes = mostly(st.integers(0, 99), st.none(), st.integers(-(2**31), 2**31 - 1))
# Pandas-written files store integer codes as doubles; a null there may arrive as NaN.
double_codes = mostly(st.integers(0, 99).map(float), st.none(), st.just(math.nan))

TRIP_ROW = st.fixed_dictionaries(
    {
        "VendorID": codes,
        "tpep_pickup_datetime": timestamps,
        "trip_minutes": mostly(st.floats(5, 60), st.none(), st.floats(-120, 2000)),
        "passenger_count": double_codes,
        "trip_distance": distances,
        "RatecodeID": double_codes,
        "PULocationID": zone_ids,
        "DOLocationID": zone_ids,
        "payment_type": codes,
        "fare_amount": amounts,
        "tip_amount": amounts,
        "total_amount": amounts,
    }
)
RAW_TYPES = {
    "VendorID": pa.int32(),
    "tpep_pickup_datetime": pa.timestamp("us"),
    "tpep_dropoff_datetime": pa.timestamp("us"),
    "passenger_count": pa.float64(),
    "trip_distance": pa.float64(),
    "RatecodeID": pa.float64(),
    "PULocationID": pa.int32(),
    "DOLocationID": pa.int32(),
    "payment_type": pa.int64(),
    "fare_amount": pa.float64(),
    "tip_amount": pa.float64(),
    "total_amount": pa.float64(),
}


def raw_file(rows: list[dict]) -> pa.Table:
    """A yellow file in TLC's column names and types; dropoff = pickup + trip_minutes (possibly negative)."""
    for row in rows:
        minutes, pickup = row.pop("trip_minutes"), row["tpep_pickup_datetime"]
        ok = minutes is not None and pickup is not None
        row["tpep_dropoff_datetime"] = pickup + timedelta(minutes=minutes) if ok else None
    return pa.Table.from_pylist(rows, schema=pa.schema(RAW_TYPES.items()))


files = st.lists(TRIP_ROW, max_size=25).map(raw_file)


def normalized(raw: pa.Table) -> pa.Table:
    table = normalize_table(raw, "yellow", "drawn.parquet")
    assert table.schema == CANONICAL_SCHEMA and table.num_rows == raw.num_rows
    return table


@EXAMPLES
@given(raw=files)
def test_normalize_keeps_every_row_and_leaves_no_nan_or_infinity(raw):
    table = normalized(raw)
    for name in CANONICAL_SCHEMA.names:
        column = table.column(name)
        if pa.types.is_floating(column.type):
            assert all(v is None or math.isfinite(v) for v in column.to_pylist()), name


@EXAMPLES
@given(raw=files)
def test_validate_loses_no_row_and_the_engines_agree(raw, known_ids):
    table = normalized(raw)
    held = months_held(table)
    dated = sum(held.values())
    try:
        results = {engine: split_valid(table, NOVEMBER, known_ids, engine) for engine in ("polars", "pandas")}
    except WrongMonthError:
        assert (dated - held.get(str(NOVEMBER), 0)) / dated > MAX_SHARE_OUTSIDE_MONTH
        return
    (polars_clean, polars_quarantine), (pandas_clean, pandas_quarantine) = results.values()
    assert polars_clean.num_rows + polars_quarantine.num_rows == table.num_rows
    assert polars_quarantine.equals(pandas_quarantine)
    assert polars_clean.equals(pandas_clean)


@EXAMPLES
@given(raw=files)
def test_transform_of_clean_rows_agrees_and_is_finite(raw, known_ids, zones):
    try:
        clean, _ = split_valid(normalized(raw), NOVEMBER, known_ids, "polars")
    except WrongMonthError:
        return
    event(f"clean rows: {min(clean.num_rows, 3)}+")
    polars_trips = add_derived_columns(clean, zones, "polars")
    assert_same_tables(polars_trips, add_derived_columns(clean, zones, "pandas"))
    for name in ("trip_duration_min", "avg_speed_mph"):
        assert all(math.isfinite(v) for v in polars_trips[name].to_pylist()), name
    assert all(v is None or math.isfinite(v) for v in polars_trips["tip_fraction"].to_pylist())
    assert all(d > 0 for d in polars_trips["trip_duration_min"].to_pylist())


@EXAMPLES
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=10))
def test_a_double_code_is_an_integer_or_a_clear_error(values):
    """A code column stored as double maps to int32 exactly (NaN and infinities to null), or the file is refused
    with SchemaError; never a silently truncated or wrapped value."""
    table = pa.table({**{name: pa.nulls(len(values), t) for name, t in RAW_TYPES.items()}, "RatecodeID": values})
    finite = [v for v in values if v is not None and math.isfinite(v)]
    try:
        out = normalize_table(table, "yellow").column("ratecode_id").to_pylist()
    except SchemaError:
        assert any(v != int(v) or abs(v) >= 2**31 for v in finite)
        return
    assert out == [int(v) if v is not None and math.isfinite(v) else None for v in values]


@pytest.mark.parametrize("share_outside", [0.0, 0.25, 0.5])
def test_up_to_the_threshold_stray_months_do_not_refuse_the_file(share_outside, known_ids):
    """A non-property check of the boundary the properties rely on: exactly the threshold is still accepted."""
    rows = 20
    outside = int(rows * share_outside)
    pickups = [datetime(2025, 10, 31, 12)] * outside + [datetime(2025, 11, 12, 12)] * (rows - outside)
    ordinary = {"trip_minutes": 10.0, "trip_distance": 2.0, "PULocationID": 132, "DOLocationID": 138}
    raw = raw_file([{**ordinary, "tpep_pickup_datetime": p, "total_amount": 20.0} for p in pickups])
    _, quarantine = split_valid(normalized(raw), NOVEMBER, known_ids)
    assert quarantine["reason"].to_pylist() == ["pickup_outside_month"] * outside


@EXAMPLES
@given(
    raw=files,
    copy=st.sampled_from(["TOTAL_AMOUNT", "Fare_Amount", "pickup_location_id"]),
    scale=st.sampled_from([1, 10]),
)
def test_the_engines_normalize_any_drawn_file_alike(raw, copy, scale):
    """One mapping, two engines: the same table, or the same refusal. A drawn file also carries a second column
    folding into an existing one: every other value copied, times `scale`, so the two agree or (mostly) not."""
    original = raw.column(CANONICAL_COPIES[copy]).to_pylist()
    values = [None if i % 2 or v is None else v * scale for i, v in enumerate(original)]
    raw = raw.append_column(copy, pa.array(values, pa.float64() if copy != "pickup_location_id" else pa.int64()))
    outcomes = {}
    for engine in ("polars", "pandas"):
        try:
            outcomes[engine] = get_engine(engine).normalize(raw, "yellow", "drawn.parquet")
        except SchemaError as error:
            outcomes[engine] = str(error)
    event(outcomes["pandas"].split(": ")[1][:30] if isinstance(outcomes["pandas"], str) else "normalized")
    if isinstance(outcomes["pandas"], str):
        assert outcomes["polars"] == outcomes["pandas"]
    else:
        assert_same_tables(outcomes["polars"], outcomes["pandas"])


CANONICAL_COPIES = {"TOTAL_AMOUNT": "total_amount", "Fare_Amount": "fare_amount", "pickup_location_id": "PULocationID"}
