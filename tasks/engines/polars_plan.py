"""A month's polars lazy plan: scan, normalize, flag each row with the first rule it breaks, derive the trip columns.

Nothing here reads the rows except two small streamed passes that must run before the plan is built: the checks
that a file's values survive their casts (`check_lossless_casts`) and, in `tasks.engines.polars_month`, the pickup
months and distinct hours. `month_plans` returns the two datasets, trips and quarantine, as lazy frames in their
files' column order; `tasks.engines.polars_month` sinks them and commits the month.

A parquet file, local or on S3 (polars' own S3 client, with `settings.polars_storage_options`), is scanned.
Anything else (CSV, gzip, http) is read whole into memory first by `tasks.extract.read_trip_file` and then runs
through the same plan: its peak is the file's size plus the plan's.
"""

from __future__ import annotations

import os

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.engines.polars_engine import DURATION_US, derive, flag_rows, offsets_by_hour, with_trip_duration
from tasks.extract import PARQUET_MAGIC, SourceError, _is_local_parquet, parquet_row_count, read_trip_file
from tasks.lake.tables import PARTITION_COLUMNS
from tasks.months import Month
from tasks.schema import (
    CANONICAL_SCHEMA,
    NEW_YORK,
    QUARANTINE_SCHEMA,
    REQUIRED_COLUMNS,
    TRIPS_SCHEMA,
    SchemaError,
    canonical_name,
    check_service,
    normalize_table,
)
from tasks.settings import fsspec_options, polars_storage_options
from tasks.zones import ZoneTable

ROW_GROUP_PREFETCH_VARIABLE = "POLARS_ROW_GROUP_PREFETCH_SIZE"


def read_one_row_group_ahead() -> None:
    """polars' parquet source reads row groups ahead (many by default); one at a time is what bounds a month.
    Measured with run_month on generated months: peak RSS 3M rows 1.0 -> 0.94 GB, 12M rows 1.9 -> 1.5 GB, same run
    time. polars has no API for it, only this environment variable, read when a scan starts: so it is set here,
    when a month is about to stream (never on import), and a value the user set wins."""
    os.environ.setdefault(ROW_GROUP_PREFETCH_VARIABLE, "1")


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars types of an Arrow schema (timestamp[us] -> Datetime("us"), date32 -> Date, ...)."""
    return pl.from_arrow(schema.empty_table()).schema


CANONICAL_TYPES = polars_schema(CANONICAL_SCHEMA)


def _as_canonical(name: str, source_type: pl.DataType) -> pl.Expr:
    """A source column before its cast: NaN and infinities as null, zoned times as New York wall times (the same
    preparation as `tasks.schema._to_canonical_type`)."""
    column = pl.col(name)
    if source_type.is_float():
        column = pl.when(column.is_finite()).then(column)
    if isinstance(source_type, pl.Datetime) and source_type.time_zone is not None:
        column = column.dt.convert_time_zone(NEW_YORK).dt.replace_time_zone(None)
    return column


def check_lossless_casts(scan: pl.LazyFrame, source: str) -> None:
    """Refuse a file whose numbers or times would change when cast to the canonical types (a code of 1.5, an id
    beyond int32, a nanosecond time), as pyarrow's safe cast in `normalize_table` does. polars' cast truncates
    1.5 to 1 silently, so the values are compared after a cast there and back, in one streamed pass."""
    source_types = scan.collect_schema()
    checks = []
    for name, source_type in source_types.items():
        target = CANONICAL_TYPES.get(canonical_name(name))
        if target is None or source_type == target or not (source_type.is_numeric() or source_type.is_temporal()):
            continue
        before = _as_canonical(name, source_type)
        prepared_type = pl.Datetime(source_type.time_unit) if isinstance(source_type, pl.Datetime) else source_type
        after = before.cast(target, strict=False)
        changed = after.is_null() | (after.cast(prepared_type, strict=False) != before)
        checks.append((before.is_not_null() & changed.fill_null(True)).sum().alias(name))
    if not checks:
        return
    lossy = {name: n for name, n in scan.select(checks).collect(engine="streaming").row(0, named=True).items() if n}
    if lossy:
        described = ", ".join(f"{name!r} ({source_types[name]}, {n:,} value(s))" for name, n in lossy.items())
        raise SchemaError(f"{source}: column(s) {described} cannot become their canonical types without loss")


def normalize_lazy(scan: pl.LazyFrame, service: str, source: str) -> pl.LazyFrame:
    """`scan` mapped onto `CANONICAL_SCHEMA` by column name, as `tasks.schema.normalize_table` maps a table:
    aliases, case-insensitive names, coalesced duplicates, typed nulls for absent columns, `service` added.

    Checks the service (from the column names) and the required columns at once; lossy casts are refused by
    `check_lossless_casts`."""
    source_types = scan.collect_schema()
    check_service(list(source_types), service, source)
    by_canonical: dict[str, list[str]] = {}
    for name in source_types:
        target = canonical_name(name)
        if target in CANONICAL_TYPES and target != "service":
            by_canonical.setdefault(target, []).append(name)
    missing = [name for name in REQUIRED_COLUMNS if name not in by_canonical]
    if missing:
        raise SchemaError(
            f"{source}: missing required column(s) {', '.join(missing)} (found: {', '.join(source_types)})"
        )
    columns = []
    for name, target in CANONICAL_TYPES.items():
        if name == "service":
            columns.append(pl.lit(service, dtype=pl.String).alias(name))
        elif name in by_canonical:
            casts = [_as_canonical(n, source_types[n]).cast(target) for n in by_canonical[name]]
            columns.append(pl.coalesce(casts).alias(name))
        else:
            columns.append(pl.lit(None, dtype=target).alias(name))
    return scan.select(columns)


def _is_s3_parquet(source: str) -> bool:
    """Whether `source` is an S3 object that starts like parquet (4 bytes read). Any error answers no, so that
    `read_trip_file` reports it in its own words."""
    if not source.startswith("s3://"):
        return False
    try:
        filesystem, path = fsspec.core.url_to_fs(source, **fsspec_options(source))
        with filesystem.open(path, "rb") as handle:
            return handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC
    except Exception:  # any failure is reported by the fallback's read, in its own words
        return False


def scan_month(source: str, service: str) -> tuple[pl.LazyFrame, int]:
    """(the normalized month as a lazy frame, its row count). A parquet file, local or on S3, is scanned and
    counted from its footer; any other source is read into memory and normalized there."""
    if _is_s3_parquet(source):
        rows_in = parquet_row_count(source)  # through fsspec: S3 faults become SourceErrors, judged for retries
        scan = pl.scan_parquet(source, storage_options=polars_storage_options(source) or None)
    elif _is_local_parquet(source):
        try:
            rows_in = pq.read_metadata(source).num_rows
        except (pa.ArrowInvalid, OSError) as error:
            raise SourceError(f"{source}: corrupt or truncated parquet file: {error}") from error
        scan = pl.scan_parquet(source)
    else:
        table = normalize_table(read_trip_file(source), service, source)
        return pl.from_arrow(table).lazy(), table.num_rows
    if rows_in == 0:
        raise SourceError(f"{source}: file holds no trip rows")
    frame = normalize_lazy(scan, service, source)
    check_lossless_casts(scan, source)
    return frame, rows_in


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
