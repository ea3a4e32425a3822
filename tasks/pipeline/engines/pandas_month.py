"""A month's steps in pandas: the same steps as `polars_month`, on tables held in memory (the comparison engine).

Pure: nothing here stages, locks or commits; `tasks.pipeline.month.run_month` does, around these steps.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.lake.tables import PARTITION_COLUMNS
from tasks.months import Month
from tasks.pipeline.engines import pandas_engine
from tasks.pipeline.extract import read_trip_file
from tasks.pipeline.rules import check_row_invariant
from tasks.pipeline.validate import check_month_matches
from tasks.pipeline.zones import ZoneTable
from tasks.settings import PARQUET_COMPRESSION


def read(location: str, service: str, source: str) -> pa.Table:
    """The month's rows in the canonical schema, read whole; `source` names the file in errors."""
    return pandas_engine.normalize(read_trip_file(location), service, source)


def check(rows: pa.Table, month: Month) -> pa.Table:
    """Refuse a file whose pickups are mostly in another month (`WrongMonthError`)."""
    check_month_matches(rows, month)
    return rows


def validate(rows: pa.Table, month: Month, zones: ZoneTable) -> tuple[pa.Table, pa.Table]:
    """(clean rows, quarantined rows with the `reason` of the first rule each breaks)."""
    clean, quarantine = pandas_engine.split_valid(rows, month, zones.known_location_ids())
    check_row_invariant(rows.num_rows, clean.num_rows, quarantine.num_rows, f"validate {month}")
    return clean, quarantine


def transform(clean: pa.Table, zones: ZoneTable) -> pa.Table:
    """The clean rows with every derived column of `TRIPS_SCHEMA`."""
    return pandas_engine.add_derived_columns(clean, zones.table)


def write(datasets: dict[str, pa.Table], files: dict[str, str]) -> None:
    """Each dataset into its local parquet file of `files`, as `to_arrow` gives it."""
    for name, rows in datasets.items():
        pq.write_table(to_arrow(rows), files[name], compression=PARQUET_COMPRESSION)


def to_arrow(rows: pa.Table) -> pa.Table:
    """The rows as their file holds them: without the partition columns, which live in the path."""
    return rows.select([name for name in rows.column_names if name not in PARTITION_COLUMNS])
