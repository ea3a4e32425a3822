"""One month as one polars lazy plan, from scan to sinks, run by polars' streaming engine in bounded memory.

The plan: scan the source, normalize it (`normalize_lazy`, the lazy twin of `tasks.schema.normalize_table`),
compute each trip's duration, flag every row with the first rule it breaks, derive the trip columns with the zone
names, and sink both datasets, trips and quarantine, into the staged files of a new version of the month
(`tasks.commit.staged_version`), which is committed once both are written. The streaming engine holds batches of
rows, not the month. The two sinks run one after the other, each reading the source again: measured on a 12M-row
generated month, one `pl.collect_all` of both sinks peaked at 2.9 GB RSS and two sinks in turn at 1.9 GB (3M rows:
1.2 GB and 1.0 GB), for about a second more of reading.

Two small facts must be known before the rows stream by, so a first pass computes only them (a group-by and a
`unique` over the time columns, also streamed): the rows per pickup month, for the wrong-month guard that must
refuse a file before anything is written, and the distinct wall-clock hours, whose New York UTC offsets give the
DST-aware durations (`polars_engine.offsets_by_hour`). The counts for the summary are read afterwards from what
was written: row counts from the parquet footers, reasons from a group-by over the quarantine file's one column.

A parquet file, local or on S3 (polars' own S3 client, with `settings.polars_storage_options`), is scanned.
Anything else (CSV, gzip, http) is read whole into memory first by `tasks.extract.read_trip_file` and then runs
through the same plan: its peak is the file's size plus the plan's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.commit import PARTITION_COLUMNS, commit_version, staged_version
from tasks.engines.polars_engine import (
    DURATION_US,
    derive,
    distinct_hours,
    flag_rows,
    offsets_by_hour,
    with_trip_duration,
)
from tasks.extract import PARQUET_MAGIC, SourceError, _is_local_parquet, parquet_row_count, read_trip_file
from tasks.lake import filesystem_for
from tasks.months import Month
from tasks.rules import check_row_invariant
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
from tasks.settings import PARQUET_COMPRESSION, fsspec_options, polars_storage_options
from tasks.validate import check_months_held
from tasks.zones import ZoneTable

DATASETS = ("trips", "quarantine")

# polars' parquet source reads row groups ahead (many by default); one at a time is what bounds a month. Measured
# with run_month on generated months: peak RSS 3M rows 1.0 -> 0.94 GB, 12M rows 1.9 -> 1.5 GB, same run time. An
# environment variable (polars has no API for it), read when a scan starts; a value set by the user wins.
os.environ.setdefault("POLARS_ROW_GROUP_PREFETCH_SIZE", "1")


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars types of an Arrow schema (timestamp[us] -> Datetime("us"), date32 -> Date, ...)."""
    return pl.from_arrow(schema.empty_table()).schema


CANONICAL_TYPES = polars_schema(CANONICAL_SCHEMA)


@dataclass
class MonthCounts:
    """What a streamed month did, counted from its source's footer and from the files written."""

    rows_in: int
    rows_clean: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)


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


def _held_by_name(counts: pl.DataFrame) -> dict[str, int]:
    ordered = counts.sort(["rows", "key"], descending=[True, False])
    return {f"{key // 100:04d}-{key % 100:02d}": rows for key, rows in ordered.iter_rows()}


def _written_columns(schema: pa.Schema) -> list[pl.Expr]:
    """The columns of a dataset's file, in order and type (partition columns live in the path)."""
    types = polars_schema(schema)
    return [pl.col(name).cast(dtype) for name, dtype in types.items() if name not in PARTITION_COLUMNS]


@contextmanager
def _local_targets(root: str, staged: dict[str, str]) -> Iterator[dict[str, str]]:
    """Paths the sinks can write: the staged paths themselves for a local root; for S3, local temporary files
    that are uploaded to the staged paths when the block ends (polars would need S3 credentials of its own)."""
    if not root.startswith("s3://"):
        yield staged
        return
    filesystem = filesystem_for(root)
    with tempfile.TemporaryDirectory(prefix="taxi-month-") as folder:
        local = {dataset: f"{folder}/{dataset}.parquet" for dataset in staged}
        yield local
        for dataset, path in local.items():
            filesystem.put_file(path, staged[dataset])


def _count_written(counts: MonthCounts, paths: dict[str, str]) -> None:
    counts.rows_clean = pq.read_metadata(paths["trips"]).num_rows
    counts.rows_quarantined = pq.read_metadata(paths["quarantine"]).num_rows
    reasons = pl.scan_parquet(paths["quarantine"]).group_by("reason").agg(rows=pl.len()).collect()
    ordered = reasons.sort(["rows", "reason"], descending=[True, False])
    counts.quarantined_by_reason = dict(ordered.iter_rows())


def stream_month(
    source: str,
    service: str,
    month: Month,
    root: str,
    zones: ZoneTable,
    commit_lock: Callable[[], AbstractContextManager] = nullcontext,
) -> tuple[dict[str, str], MonthCounts]:
    """Run one month's plan and commit it, holding `commit_lock()` while committing (staging writes only new
    paths): `({dataset: part-0.parquet URI}, counts)`.

    Raises `WrongMonthError` (nothing staged), `ServiceMismatchError`/`SchemaError`/`SourceError` before
    anything is written; a failure while writing removes the staged version, leaving the month as it was.
    """
    frame, rows_in = scan_month(source, service)
    held, hours = pl.collect_all([months_held(frame), distinct_hours(frame)], engine="streaming")
    check_months_held(_held_by_name(held), month)

    timed = with_trip_duration(frame, offsets_by_hour(hours["hour"]))
    flagged = flag_rows(timed, month, zones.known_location_ids())
    is_clean = pl.col("reason").is_null()
    trips = derive(flagged.filter(is_clean).drop("reason"), pl.from_arrow(zones.table))
    quarantine = flagged.filter(~is_clean).drop(DURATION_US)
    plans = {"trips": trips.select(_written_columns(TRIPS_SCHEMA))}
    plans["quarantine"] = quarantine.select(_written_columns(QUARANTINE_SCHEMA))

    counts = MonthCounts(rows_in=rows_in)
    with staged_version(root, service, month, list(DATASETS)) as staged, _local_targets(root, staged.paths) as paths:
        sinks = [plans[name].sink_parquet(paths[name], compression=PARQUET_COMPRESSION, lazy=True) for name in DATASETS]
        for sink in sinks:
            sink.collect(engine="streaming")
        _count_written(counts, paths)
        check_row_invariant(rows_in, counts.rows_clean, counts.rows_quarantined, f"stream {service} {month}")
    with commit_lock():
        return commit_version(root, service, month, staged.version, list(DATASETS)), counts
