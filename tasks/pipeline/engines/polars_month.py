"""A month's steps in polars: each returns a `Plan` over the month's file, and only `write` runs the plans.

`read` checks the parquet file where it is (local or S3) and normalizes it; `check` counts the rows per pair of
pickup and dropoff hours before the rows go by (`polars_engine.hour_pairs`, a small table), which gives the rows per
pickup month (the wrong-month guard) and the distinct wall-clock hours, whose New York UTC offsets give DST-aware
durations (`polars_engine.offsets_by_hour`); `validate` flags every row with the first rule it breaks and splits
the month; `transform` derives the trip columns with the zone names. After those whole-file facts every step is
row-wise, so `write` runs both datasets' plans on each batch of the file in one pass and appends them to their
files (`polars_batches`): a batch is held, never the month.

Pure: nothing here stages, locks or commits; `tasks.pipeline.month.run_month` does, around these steps.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from tasks.lake.tables import PARTITION_COLUMNS
from tasks.months import Month
from tasks.pipeline.engines.polars_batches import Plan, scan, write_batches
from tasks.pipeline.engines.polars_engine import (
    DURATION_US,
    derive,
    distinct_hours,
    flag_rows,
    hour_pairs,
    offsets_by_hour,
    with_trip_duration,
)
from tasks.pipeline.engines.polars_normalize import normalized_columns, polars_schema
from tasks.pipeline.validate import check_months_held
from tasks.pipeline.zones import ZoneTable
from tasks.schema import QUARANTINE_SCHEMA, TRIPS_SCHEMA


def read(location: str, service: str, source: str) -> Plan:
    """The month's rows in the canonical schema, as a plan over the file at `location` (a local path or an S3
    parquet URI); `source` names the file in errors. The file's values are checked here, in one streamed pass."""
    columns = normalized_columns(scan(location), service, source)
    return Plan(location, lambda frame: frame.select(columns))


def check(rows: Plan, month: Month) -> Plan:
    """Refuse a file whose pickups are mostly in another month (`WrongMonthError`); return the rows with their
    trip duration between real instants, which the rules and the derived columns both need."""
    pairs = hour_pairs(rows.frame()).collect(engine="streaming")  # one small group-by, whatever the month's rows
    check_months_held(held_by_name(months_held(pairs)), month)
    offsets = offsets_by_hour(distinct_hours(pairs))
    return rows.then(lambda frame: with_trip_duration(frame, offsets))


def validate(rows: Plan, month: Month, zones: ZoneTable) -> tuple[Plan, Plan]:
    """(clean rows, quarantined rows in their file's columns with the `reason` of the first rule each breaks)."""
    known = zones.known_location_ids()
    is_clean = pl.col("reason").is_null()
    flagged = rows.then(lambda frame: flag_rows(frame, month, known))
    clean = flagged.then(lambda frame: frame.filter(is_clean).drop("reason"))
    columns = written_columns(QUARANTINE_SCHEMA)
    quarantine = flagged.then(
        lambda frame: frame.filter(~is_clean).drop(DURATION_US).select(columns), file_schema(QUARANTINE_SCHEMA)
    )
    return clean, quarantine


def transform(clean: Plan, zones: ZoneTable) -> Plan:
    """The clean rows with every derived column of `TRIPS_SCHEMA`, in their file's columns. `tip_fraction` is
    `tip / total` where the total is positive and 0 where it is not, so it is never NaN or inf (Prefect's big-data
    guide divides by `total_amount` unguarded; real files hold zeros); it is null only where the quotient
    overflows. Durations and speeds are between real instants (`tasks.pipeline.rules.DURATION_ON_INSTANTS`)."""
    table, columns = pl.from_arrow(zones.table), written_columns(TRIPS_SCHEMA)
    return clean.then(lambda frame: derive(frame, table).select(columns), file_schema(TRIPS_SCHEMA))


def write(datasets: dict[str, Plan], files: dict[str, str]) -> None:
    """Run every dataset's plan into its local parquet file of `files`, in one pass over the month's file, a batch
    at a time (`polars_batches.write_batches`)."""
    write_batches(datasets, files)


def to_arrow(rows: Plan) -> pa.Table:
    """The rows in memory as their file holds them (for a lesson that keeps a month's table)."""
    table = rows.frame().collect().to_arrow()
    return table.cast(rows.schema) if rows.schema is not None else table


def months_held(pairs: pl.DataFrame) -> pl.DataFrame:
    """Rows per pickup month (`key` = year * 100 + month, `rows`), dated rows only, from `hour_pairs`' table."""
    pickup = pl.col("pickup_hour")
    key = (pickup.dt.year() * 100 + pickup.dt.month()).alias("key")
    return pairs.filter(pickup.is_not_null()).group_by(key).agg(rows=pl.col("rows").sum())


def held_by_name(counts: pl.DataFrame) -> dict[str, int]:
    """`months_held` as {"YYYY-MM": rows}, the month holding most rows first."""
    ordered = counts.sort(["rows", "key"], descending=[True, False])
    return {f"{key // 100:04d}-{key % 100:02d}": rows for key, rows in ordered.iter_rows()}


def written_columns(schema: pa.Schema) -> list[pl.Expr]:
    """The columns of a dataset's file, in order and type (partition columns live in the path)."""
    types = polars_schema(schema)
    return [pl.col(name).cast(dtype) for name, dtype in types.items() if name not in PARTITION_COLUMNS]


def file_schema(schema: pa.Schema) -> pa.Schema:
    """A dataset's schema without its partition columns (they live in the path): the schema of its file."""
    return pa.schema([field for field in schema if field.name not in PARTITION_COLUMNS])
