"""A month's polars lazy plan: scan, normalize, flag each row with the first rule it breaks, derive the trip columns.

Nothing here reads the rows except two small streamed passes that must run before the plan is built: the checks
that a file's values survive their casts and its folded columns agree (`polars_normalize.check_values`) and, in
`tasks.engines.polars_month`, the pickup months and distinct hours. `month_plans` returns the two datasets, trips
and quarantine, as lazy frames in their files' column order; `tasks.engines.polars_month` sinks them into local
files, which `tasks.pipeline` commits.

A parquet file, local or on S3 (polars' own S3 client, with `settings.polars_storage_options`), is scanned where
it is. Anything else (http, CSV, gzip) is staged as a local parquet file first (`tasks.extract.staged_parquet`:
downloaded in chunks, converted block by block) and scanned from there, through the same plan and in the same
bounded memory; the staged file lives as long as the month (`open_month`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.engines.polars_engine import DURATION_US, derive, flag_rows, offsets_by_hour, with_trip_duration
from tasks.engines.polars_normalize import normalize_lazy, polars_schema
from tasks.extract import PARQUET_MAGIC, SourceError, parquet_row_count, staged_parquet
from tasks.lake.tables import PARTITION_COLUMNS
from tasks.months import Month
from tasks.schema import QUARANTINE_SCHEMA, TRIPS_SCHEMA
from tasks.settings import fsspec_options, polars_storage_options
from tasks.zones import ZoneTable

ROW_GROUP_PREFETCH_VARIABLE = "POLARS_ROW_GROUP_PREFETCH_SIZE"


def read_one_row_group_ahead() -> None:
    """polars' parquet source reads row groups ahead (many by default); one at a time lowers a month's peak at the
    same speed (benchmarks/README.md). polars has no API for it, only this environment variable, read when a scan
    starts: so it is set here, when a month is about to stream (never on import), and a value the user set wins."""
    os.environ.setdefault(ROW_GROUP_PREFETCH_VARIABLE, "1")


def _is_s3_parquet(source: str) -> bool:
    """Whether `source` is an S3 object that starts like parquet (4 bytes read). Any error answers no, so that
    `staged_parquet` reports it in its own words."""
    if not source.startswith("s3://"):
        return False
    try:
        filesystem, path = fsspec.core.url_to_fs(source, **fsspec_options(source))
        with filesystem.open(path, "rb") as handle:
            return handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC
    except Exception:  # any failure is reported by the fallback's read, in its own words
        return False


@contextmanager
def open_month(source: str, service: str) -> Iterator[tuple[pl.LazyFrame, int]]:
    """(the normalized month as a lazy frame, its row count from the parquet footer), for the `with` block.

    A parquet file on S3 is scanned where it is; any other source through a local parquet file
    (`tasks.extract.staged_parquet`), which is removed when the block ends, however it ends: run the whole month,
    every sink of its plan, inside the block."""
    with ExitStack() as staged:
        yield _open(source, service, staged)


def _open(source: str, service: str, staged: ExitStack) -> tuple[pl.LazyFrame, int]:
    """The month's normalized scan and row count; a staged copy of the source is entered into `staged`."""
    if _is_s3_parquet(source):
        rows_in = parquet_row_count(source)  # through fsspec: S3 faults become SourceErrors, judged for retries
        scan = pl.scan_parquet(source, storage_options=polars_storage_options(source) or None)
    else:
        path = staged.enter_context(staged_parquet(source))
        try:
            rows_in = pq.read_metadata(path).num_rows
        except (pa.ArrowInvalid, OSError) as error:
            raise SourceError(f"{source}: corrupt or truncated parquet file: {error}") from error
        scan = pl.scan_parquet(path)
    if rows_in == 0:
        raise SourceError(f"{source}: file holds no trip rows")
    return normalize_lazy(scan, service, source), rows_in


def months_held(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Rows per pickup month (`key` = year * 100 + month, `rows`), dated rows only: a small streamed group-by."""
    pickup = pl.col("pickup_datetime")
    key = (pickup.dt.year() * 100 + pickup.dt.month()).alias("key")
    return frame.select(key).drop_nulls().group_by("key").agg(rows=pl.len())


def held_by_name(counts: pl.DataFrame) -> dict[str, int]:
    """`months_held` as {"YYYY-MM": rows}, the month holding most rows first."""
    ordered = counts.sort(["rows", "key"], descending=[True, False])
    return {f"{key // 100:04d}-{key % 100:02d}": rows for key, rows in ordered.iter_rows()}


def _written_columns(schema: pa.Schema) -> list[pl.Expr]:
    """The columns of a dataset's file, in order and type (partition columns live in the path)."""
    types = polars_schema(schema)
    return [pl.col(name).cast(dtype) for name, dtype in types.items() if name not in PARTITION_COLUMNS]


def month_plans(frame: pl.LazyFrame, hours: pl.Series, month: Month, zones: ZoneTable) -> dict[str, pl.LazyFrame]:
    """`{"trips": ..., "quarantine": ...}`: the normalized month `frame` split by the rules and written out, as
    lazy frames in their files' columns. `hours` are the distinct wall-clock hours of its times (`distinct_hours`),
    whose UTC offsets give DST-aware durations."""
    timed = with_trip_duration(frame, offsets_by_hour(hours))
    flagged = flag_rows(timed, month, zones.known_location_ids())
    is_clean = pl.col("reason").is_null()
    trips = derive(flagged.filter(is_clean).drop("reason"), pl.from_arrow(zones.table))
    quarantine = flagged.filter(~is_clean).drop(DURATION_US)
    return {
        "trips": trips.select(_written_columns(TRIPS_SCHEMA)),
        "quarantine": quarantine.select(_written_columns(QUARANTINE_SCHEMA)),
    }
