"""Writing the lake: `trips` and `quarantine`, two Delta tables partitioned by service, year and month.

A month is two Delta transactions, each replacing that month only: quarantine first, then trips. A streamed month
(the polars engine's local parquet file) is placed in the partition folder as written and committed by name, so
the commit is small next to the month; a table in memory (the pandas engine) goes through `write_deltalake` with a
predicate overwrite. Both commits carry the same *write id* (a Delta application transaction, `app_id` = the
month) and the run's lineage; the trips commit also records the quarantine version it pairs with. A reader
(`tasks/lake/read.py`) that finds another write id on quarantine (a crash between the commits, interleaved
writers) reads quarantine at that version, so no reader sees trips of one run beside quarantine of another.

Concurrent writers are caught by Delta itself: each commit is a new numbered log entry, created by a conditional
PUT on S3 (`settings.delta_storage_options`) or an exclusive create on disk; the loser gets `CommitFailedError`
and writes again, at most `settings.LAKE_COMMIT_ATTEMPTS` times, then raises `LakeWriteConflict` naming the month.
The write lock (`tasks/lake/write_lock.py`) only queues writers. Free of Prefect: a script writing months imports this
in a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, create_table_with_add_actions
from fsspec.implementations.local import LocalFileSystem

from tasks import settings
from tasks.months import Month

TABLES = ("trips", "quarantine")  # written in reverse order: quarantine, then the trips that pair with it
PARTITION_COLUMNS = ("service", "year", "month")
LINEAGE_KEY = "taxi"  # the commit metadata's one key of ours (Delta's own keys stay beside it)
COMPRESSION: Literal["ZSTD"] = "ZSTD"  # settings.PARQUET_COMPRESSION, in deltalake's spelling
ROW_GROUP_ROWS = 131_072  # write_deltalake holds a row group in memory before encoding it: a small one bounds it

MonthData: TypeAlias = pa.Table | str  # a table in memory, or a local parquet file (streamed, never read whole)


class LakeUnreachable(ConnectionError):
    """The lake's storage did not answer (refused, reset, timed out): a transient fault, worth a retry later.

    deltalake reports every storage failure as a bare `OSError` whose message tells what happened; this names the
    passing ones as connection errors, which `tasks.retries.is_transient` retries."""


_UNREACHABLE = ("error sending request", "timed out", "connection refused", "connection reset", "dns error")


@contextmanager
def storage_faults(uri: str) -> Iterator[None]:
    """Raise a deltalake `OSError` that says the storage was unreachable as `LakeUnreachable`, naming `uri`."""
    try:
        yield
    except OSError as error:
        if type(error) is OSError and any(phrase in str(error).lower() for phrase in _UNREACHABLE):
            raise LakeUnreachable(f"the output {uri} is unreachable: {error}") from error
        raise


class LakeWriteConflict(RuntimeError):
    """Another writer kept committing the same month: every attempt lost Delta's optimistic concurrency check."""


@dataclass(frozen=True)
class MonthCommit:
    """What a month's write committed: the write id shared by both commits and each table's new version."""

    write_id: int
    versions: dict[str, int]


def table_uri(root: str, table: str) -> str:
    """The Delta table `table` ("trips" or "quarantine") under the output root (a folder or an `s3://` prefix)."""
    return f"{root.rstrip('/')}/{table}"


def month_key(service: str, month: Month) -> str:
    """The month's application id in Delta's transaction log, e.g. `taxi/yellow/2025-01`."""
    return f"taxi/{service}/{month}"


def month_predicate(service: str, month: Month) -> str:
    """The SQL predicate selecting one month's partition, for an overwrite of that month only."""
    return f"service = '{service}' AND year = {month.year} AND month = {month.month}"


def partition_filters(service: str, month: Month) -> list[tuple[str, str, str]]:
    """The same month as deltalake partition filters (values as strings, as Delta stores them)."""
    return [("service", "=", service), ("year", "=", str(month.year)), ("month", "=", str(month.month))]


def open_table(root: str, table: str, version: int | None = None) -> DeltaTable | None:
    """The table at `version` (default the latest), or None if nothing was ever written to it."""
    uri = table_uri(root, table)
    try:
        with storage_faults(uri):
            return DeltaTable(uri, version=version, storage_options=settings.delta_storage_options(uri))
    except TableNotFoundError:
        return None


def run_number(flow_run_id: str) -> int:
    """A flow run id as a Delta transaction version (a positive long): the run's mark on the months it wrote."""
    return int(hashlib.sha256(flow_run_id.encode()).hexdigest()[:15], 16)


def _with_partitions(data: MonthData, service: str, month: Month) -> pa.RecordBatchReader:
    """A fresh stream of `data`'s batches with the partition columns appended (a retry needs a new stream)."""
    source = ds.dataset(data)  # a file is read batch by batch; a table is already in memory
    columns = [name for name in source.schema.names if name not in PARTITION_COLUMNS]
    schema = pa.schema([source.schema.field(n) for n in columns])
    schema = schema.append(pa.field("service", pa.string())).append(pa.field("year", pa.int32()))
    schema = schema.append(pa.field("month", pa.int32()))

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in source.to_batches(columns=columns, batch_readahead=1, fragment_readahead=1):
            rows = batch.num_rows
            constants = [pa.array([service] * rows, pa.string()), pa.array([month.year] * rows, pa.int32())]
            constants.append(pa.array([month.month] * rows, pa.int32()))
            yield pa.RecordBatch.from_arrays([*batch.columns, *constants], schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _commit_month(
    root: str, table: str, service: str, month: Month, data: MonthData, metadata: dict, marks: dict[str, int]
) -> int:
    """One Delta transaction replacing the month in `table`, retried on conflicts; returns the version written.

    `marks` are application transactions (`{app_id: version}`) committed with it: Delta keeps the latest version
    of each app id in the table's state, so a reader finds them without reading the log's history."""
    uri = table_uri(root, table)
    write_id = marks[month_key(service, month)]
    properties = CommitProperties(
        custom_metadata={LINEAGE_KEY: metadata},
        app_transactions=[Transaction(app_id, version) for app_id, version in marks.items()],
    )
    added = _place_file(uri, data, service, month) if isinstance(data, str) else None
    for attempt in range(1, settings.LAKE_COMMIT_ATTEMPTS + 1):
        try:
            with storage_faults(uri):
                if added is not None:
                    _commit_files(uri, data, added, service, month, properties)
                    return committed_version(root, table, service, month, write_id)
                write_deltalake(
                    uri,
                    _with_partitions(data, service, month),
                    mode="overwrite",
                    predicate=month_predicate(service, month),
                    partition_by=list(PARTITION_COLUMNS),
                    storage_options=settings.delta_storage_options(uri),
                    writer_properties=WriterProperties(compression=COMPRESSION, max_row_group_size=ROW_GROUP_ROWS),
                    configuration={"delta.logRetentionDuration": settings.LAKE_LOG_RETENTION},
                    commit_properties=properties,
                )
            return committed_version(root, table, service, month, write_id)
        except CommitFailedError as error:
            if attempt == settings.LAKE_COMMIT_ATTEMPTS:
                raise LakeWriteConflict(
                    f"{table} {service} {month}: another writer committed this month during each of "
                    f"{attempt} attempts (Delta's optimistic concurrency refused ours): {error}"
                ) from error
            time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def _place_file(uri: str, path: str, service: str, month: Month) -> AddAction:
    """Put a month's parquet file, as written, into the table's partition folder: the Delta log's add action.

    The file is written once, by the month's engine; the commit then only names it, so a month costs its own
    plan plus a copy (a hard link on the same disk), not a second decode and encode. Until a commit names it the
    file is no part of the table, and `vacuum` removes it if none ever does."""
    folder = f"service={service}/year={month.year}/month={month.month}"
    name = f"{folder}/part-{secrets.token_hex(8)}.{COMPRESSION.lower()}.parquet"
    target = f"{uri}/{name}"
    filesystem, _ = fsspec.core.url_to_fs(uri, **settings.fsspec_options(uri))
    with storage_faults(uri):
        if isinstance(filesystem, LocalFileSystem):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:  # another disk, or no hard links here
                shutil.copyfile(path, target)
        else:
            filesystem.put_file(path, target)
    rows = pq.read_metadata(path).num_rows
    return AddAction(
        path=name,
        size=os.path.getsize(path),
        partition_values={"service": service, "year": str(month.year), "month": str(month.month)},
        modification_time=int(time.time() * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": rows}),
    )


def _commit_files(
    uri: str, path: str, added: AddAction, service: str, month: Month, properties: CommitProperties
) -> None:
    """One Delta commit that replaces the month's partition with the placed file; the table's first commit makes
    the table (if another writer made it first, ours is an ordinary commit after theirs)."""
    options = settings.delta_storage_options(uri)
    try:
        found = DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        try:
            create_table_with_add_actions(
                uri,
                Schema.from_arrow(_with_partitions(path, service, month).schema),
                [added],
                mode="error",
                partition_by=list(PARTITION_COLUMNS),
                configuration={"delta.logRetentionDuration": settings.LAKE_LOG_RETENTION},
                storage_options=options,
                commit_properties=properties,
            )
            return
        except DeltaError as error:
            if "already exists" not in str(error):
                raise
            found = DeltaTable(uri, storage_options=options)
    found.create_write_transaction(
        [added],
        mode="overwrite",
        schema=found.schema(),
        partition_by=list(PARTITION_COLUMNS),
        partition_filters=partition_filters(service, month),
        commit_properties=properties,
    )


def committed_version(root: str, table: str, service: str, month: Month, write_id: int) -> int:
    """The table version our commit created, found by walking back from the latest version.

    Later commits of other months keep our mark (`write_id`) in the table's state; a later writer of this month
    replaces it, and then our commit is further back. So our version is the oldest of the newest run of versions
    whose state holds the mark."""
    found = open_table(root, table)
    if found is None:
        raise LookupError(f"{table} under {root} vanished after a commit")
    key = month_key(service, month)
    version = found.version()
    holds = found.transaction_version(key) == write_id
    while version > 0:
        found.load_as_version(version - 1)
        earlier = found.transaction_version(key) == write_id
        if holds and not earlier:
            return version
        holds, version = earlier, version - 1
    if holds:
        return 0
    raise LookupError(f"{table} {service} {month}: write {write_id} is in none of the table's versions")


def new_write_id() -> int:
    """A write id unique across writers: the time in nanoseconds with its last ten bits drawn at random."""
    return time.time_ns() // 1024 * 1024 + secrets.randbelow(1024)


def write_month(
    root: str, service: str, month: Month, data: dict[str, MonthData], lineage: dict | None = None
) -> MonthCommit:
    """Replace one month in both tables: quarantine, then trips pairing with it; returns what was committed.

    `data` maps "trips" and "quarantine" to a table or a local parquet file; `lineage` (JSON-able) goes into both
    commits' metadata, and its `flow_run_id`, if any, marks the month as that run's (`written_by_run`). A crash
    before the quarantine commit leaves the month as it was; between the two commits, readers still pair the old
    trips with the old quarantine (`tasks.lake.read`); after, the new month is whole.
    """
    write_id, key = new_write_id(), month_key(service, month)
    metadata = {**(lineage or {}), "service": service, "month": str(month), "write_id": write_id}
    quarantine = _commit_month(root, "quarantine", service, month, data["quarantine"], metadata, {key: write_id})
    run_id = (lineage or {}).get("flow_run_id")
    marks = {key: write_id, f"{key}/quarantine": quarantine, f"{key}/run": run_number(run_id) if run_id else 0}
    paired = {**metadata, "quarantine_version": quarantine}
    trips = _commit_month(root, "trips", service, month, data["trips"], paired, marks)
    return MonthCommit(write_id, {"trips": trips, "quarantine": quarantine})
