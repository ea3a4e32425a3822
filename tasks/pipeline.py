"""One month end to end as a single plain function, and as a single task.

`flows/etl.py` runs each step as its own task so the UI shows every step. The lessons often want a month as one
unit instead: to cache it (`flows/caching.py`), map it over Dask workers (`flows/dask_runner.py`), pass its output
by path (`flows/disk_io.py`) or compare it with and without Prefect (the benchmark's `overhead`). They all use
this one composition of the same pure functions.
"""

from __future__ import annotations

import time

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.extract import read_trip_file
from tasks.load import write_month
from tasks.months import Month
from tasks.report import MonthSummary
from tasks.schema import normalize_table
from tasks.transform import add_derived_columns
from tasks.validate import count_reasons, split_valid
from tasks.zones import ZoneTable


def transform_month(
    source: str, service: str, month: Month, zones: ZoneTable, engine: str
) -> tuple[int, pa.Table, pa.Table]:
    """Read, normalize, validate and transform one month: (rows in, enriched clean trips, quarantined rows).

    Only the outputs outlive the call, so each intermediate stage is freed as soon as the next exists.
    """
    table = normalize_table(read_trip_file(source), service, source)
    rows_in = table.num_rows
    clean, quarantine = split_valid(table, month, zones.known_location_ids(), engine)
    del table  # peak memory is what limits a month
    return rows_in, add_derived_columns(clean, zones.table, engine), quarantine


def run_month(source: str, service: str, month: Month, root: str, zones: ZoneTable, engine: str) -> MonthSummary:
    """Extract, normalize, validate, transform and load one month; returns its summary (no tables are kept)."""
    summary = MonthSummary(service=service, month=str(month), source=source)
    started = time.perf_counter()
    summary.rows_in, trips, quarantine = transform_month(source, service, month, zones, engine)
    summary.outputs = write_month({"trips": trips, "quarantine": quarantine}, root, service, month)
    summary.rows_clean, summary.rows_quarantined = trips.num_rows, quarantine.num_rows
    summary.quarantined_by_reason = count_reasons(quarantine)
    summary.step_seconds["month"] = round(time.perf_counter() - started, 3)
    summary.finished_at = time.time()
    return summary


@task(name="etl-month", cache_policy=NO_CACHE)
def etl_month(source: str, service: str, month: Month, root: str, zones: ZoneTable, engine: str) -> MonthSummary:
    """A whole month as one task: small inputs (a path, a month), a small output (its summary)."""
    return run_month(source, service, month, root, zones, engine)
