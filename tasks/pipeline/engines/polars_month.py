"""A month's steps in polars: each returns a lazy frame, and only `write` runs the plan, streamed, into a file.

`read` scans the parquet file where it is (local or S3) and normalizes it; `check` reads two small things before
the rows stream by, the rows per pickup month (the wrong-month guard) and the distinct wall-clock hours, whose New
York UTC offsets give DST-aware durations (`polars_engine.offsets_by_hour`); `validate` flags every row with the
first rule it breaks and splits the month; `transform` derives the trip columns with the zone names. `write` sinks
one dataset into a local parquet file: the streaming engine holds batches of rows, never the month. Each dataset
is sunk in turn, reading the source again (one sink of both held more; `benchmarks/README.md`).

Pure: nothing here stages, locks or commits; `tasks.pipeline.month.run_month` does, around these steps.
"""

from __future__ import annotations

import os

import polars as pl
import pyarrow as pa

from tasks.lake.tables import PARTITION_COLUMNS
from tasks.months import Month
from tasks.pipeline.engines.polars_engine import DURATION_US, derive, distinct_hours, flag_rows, offsets_by_hour
from tasks.pipeline.engines.polars_engine import with_trip_duration as with_trip_duration
from tasks.pipeline.engines.polars_normalize import normalize_lazy, polars_schema
from tasks.pipeline.validate import check_months_held
from tasks.pipeline.zones import ZoneTable
from tasks.schema import QUARANTINE_SCHEMA, TRIPS_SCHEMA
from tasks.settings import PARQUET_COMPRESSION, polars_storage_options

ROW_GROUP_PREFETCH_VARIABLE = "POLARS_ROW_GROUP_PREFETCH_SIZE"
# The sinks' zstd level: the encoder is the plan's slowest stage, and the batches waiting for it pile up; level 1
# encodes fastest, so the least piles up (`benchmarks/README.md`). The values written are the same.
SINK_COMPRESSION_LEVEL = 1


def read_one_row_group_ahead() -> None:
    """polars' parquet source reads many row groups ahead by default; one at a time is what bounds a month. polars
    has no API for it, only this environment variable, read when a scan starts: so it is set when a month is about
    to stream (never on import), and a value the user set wins."""
    os.environ.setdefault(ROW_GROUP_PREFETCH_VARIABLE, "1")


def read(location: str, service: str, source: str) -> pl.LazyFrame:
    """The month's rows in the canonical schema, as a scan of `location` (a local path or an S3 parquet URI);
    `source` names the file in errors."""
    read_one_row_group_ahead()
    scan = pl.scan_parquet(location, storage_options=polars_storage_options(location) or None)
    return normalize_lazy(scan, service, source)


def check(rows: pl.LazyFrame, month: Month) -> pl.LazyFrame:
    """Refuse a file whose pickups are mostly in another month (`WrongMonthError`); return the rows with their
    trip duration between real instants, which the rules and the derived columns both need."""
    held, hours = pl.collect_all([months_held(rows), distinct_hours(rows)], engine="streaming")
    check_months_held(held_by_name(held), month)
    return with_trip_duration(rows, offsets_by_hour(hours["hour"]))


def validate(rows: pl.LazyFrame, month: Month, zones: ZoneTable) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(clean rows, quarantined rows in their file's columns with the `reason` of the first rule each breaks)."""
    flagged = flag_rows(rows, month, zones.known_location_ids())
    is_clean = pl.col("reason").is_null()
    quarantine = flagged.filter(~is_clean).drop(DURATION_US)
    return flagged.filter(is_clean).drop("reason"), quarantine.select(written_columns(QUARANTINE_SCHEMA))


def transform(clean: pl.LazyFrame, zones: ZoneTable) -> pl.LazyFrame:
    """The clean rows with every derived column of `TRIPS_SCHEMA`, in their file's columns. `tip_fraction` is
    `tip / total` where the total is positive and 0 where it is not, so it is never NaN or inf (Prefect's big-data
    guide divides by `total_amount` unguarded; real files hold zeros); it is null only where the quotient
    overflows. Durations and speeds are between real instants (`tasks.pipeline.rules.DURATION_ON_INSTANTS`)."""
    return derive(clean, pl.from_arrow(zones.table)).select(written_columns(TRIPS_SCHEMA))


def write(rows: pl.LazyFrame, path: str) -> None:
    """Run the plan of `rows` with polars' streaming engine into the local parquet file `path`."""
    rows.sink_parquet(
        path, compression=PARQUET_COMPRESSION, compression_level=SINK_COMPRESSION_LEVEL, lazy=True
    ).collect(engine="streaming")


def to_arrow(rows: pl.LazyFrame) -> pa.Table:
    """The rows in memory as their file holds them (for a lesson that keeps a month's table)."""
    return rows.collect().to_arrow()


def months_held(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Rows per pickup month (`key` = year * 100 + month, `rows`), dated rows only: a small streamed group-by."""
    pickup = pl.col("pickup_datetime")
    key = (pickup.dt.year() * 100 + pickup.dt.month()).alias("key")
    return frame.select(key).drop_nulls().group_by("key").agg(rows=pl.len())


def held_by_name(counts: pl.DataFrame) -> dict[str, int]:
    """`months_held` as {"YYYY-MM": rows}, the month holding most rows first."""
    ordered = counts.sort(["rows", "key"], descending=[True, False])
    return {f"{key // 100:04d}-{key % 100:02d}": rows for key, rows in ordered.iter_rows()}


def written_columns(schema: pa.Schema) -> list[pl.Expr]:
    """The columns of a dataset's file, in order and type (partition columns live in the path)."""
    types = polars_schema(schema)
    return [pl.col(name).cast(dtype) for name, dtype in types.items() if name not in PARTITION_COLUMNS]
