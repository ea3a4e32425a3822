"""Small hand-made inputs for the pure-function tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.months import Month
from tasks.pipeline.engines import polars_month
from tasks.pipeline.extract import parquet_to_scan
from tasks.schema import CANONICAL_SCHEMA

JAN_2025 = Month(2025, 1)

VALID_TRIP = {
    "vendor_id": 2,
    "pickup_datetime": datetime(2025, 1, 10, 8, 0, 0),
    "dropoff_datetime": datetime(2025, 1, 10, 8, 15, 0),
    "passenger_count": 1,
    "trip_distance": 3.0,
    "ratecode_id": 1,
    "store_and_fwd_flag": "N",
    "pu_location_id": 132,
    "do_location_id": 138,
    "payment_type": 1,
    "fare_amount": 20.0,
    "tip_amount": 4.0,
    "total_amount": 25.0,
    "service": "yellow",
}


def trips(*overrides: dict) -> pa.Table:
    """A canonical table with one valid trip per argument, each changed by its overrides."""
    rows = [{**VALID_TRIP, **change} for change in overrides]
    return pa.Table.from_pylist(rows, schema=CANONICAL_SCHEMA)


def written_rows(root, service: str, month: str) -> dict[str, int]:
    """Rows of each table of one month as the lake serves it (`{}` if the month was never written)."""
    from tasks.lake import read_month
    from tasks.months import Month

    return {name: table.num_rows for name, table in read_month(str(root), service, Month.parse(month)).items()}


@contextmanager
def open_month(source: str, service: str) -> Iterator[tuple[pl.LazyFrame, int]]:
    """The month at `source` as `run_month` reads it with polars: (the normalized scan, rows in), for the block."""
    with parquet_to_scan(source) as (location, rows):
        yield polars_month.read(location, service, source).frame(), rows


def copies_of(path: Path, copies: int, folder: Path) -> Path:
    """A file of `copies` times the rows of the parquet file at `path`, its row groups alike."""
    table, copied = pq.read_table(path), folder / f"{copies}-times.parquet"
    row_group_rows = pq.read_metadata(path).row_group(0).num_rows
    with pq.ParquetWriter(copied, table.schema) as writer:
        for _ in range(copies):
            writer.write_table(table, row_group_size=row_group_rows)
    return copied
