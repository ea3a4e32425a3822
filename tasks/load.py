"""Load: publish a month's trips and quarantine together, as hive-partitioned parquet (zstd), by a commit record.

Layout under the output root (a folder or an `s3://` prefix):

    trips/service=<s>/year=<YYYY>/month=<MM>/part-0.parquet          the plain view, for any hive reader
    quarantine/service=<s>/year=<YYYY>/month=<MM>/part-0.parquet
    _versions/service=<s>/year=<YYYY>/month=<MM>/commit.json         names the committed version
    _versions/service=<s>/year=<YYYY>/month=<MM>/<version>/{trips,quarantine}.pq

`service`, `year` and `month` live in the path, not in the files (hive-aware readers such as
`pl.scan_parquet(..., hive_partitioning=True)` or `pyarrow.dataset` add them back).

Why a commit record. Two datasets cannot be replaced by one atomic step on S3 or on most disks: moving the trips
file and then the quarantine file leaves a window, and a crash in it, where trips of one run sit beside quarantine
of another. So a month is written as a new *version* and published by a single atomic write:

1. stage: write every dataset as `<version>/<dataset>.pq` under `_versions` (new names; nothing refers to them);
2. commit: write `commit.json` naming the version, atomically (a local rename over the old record; on S3 one PUT,
   which appears whole or not at all). This is the moment the month changes, for both datasets at once;
3. publish the plain view: replace each `part-0.parquet` with the committed file (a local hard link renamed into
   place, free of extra space; an S3 server-side copy, so S3 stores each month twice);
4. collect garbage: delete versions older than the committed one (newer ones may belong to a writer still at work).

A crash before step 2 leaves the previous month committed and untouched; after it, the new month is committed and
the next write (or rerun) repeats what is missing. Version ids are ordered and each new one is later than the
committed one; a writer that finds a newer commit when it is about to commit gives way to it.

What readers see. `tasks.lake.read_month()` / `committed_files()` read the commit record: always the whole
previous or the whole new month, both datasets from one run. Plain hive readers of `trips/` or `quarantine/`
(polars, pyarrow, dask, duckdb) see each dataset's month whole (a `part-0.parquet` is replaced in one step, never
appended to), but for the instant between the two replacements of step 3, or after a crash there until the month
is written again, trips may come from the new run and quarantine from the previous one. Temporary and versioned
files live only under `_versions/` (underscored; never inside `trips/` or `quarantine/`, where polars and dask
would read even hidden files) and end in `.pq` or `.tmp`, so `*.parquet` globs never see them.

Concurrent writers of one month must take turns: the `load` task holds the month's Prefect concurrency slot
(`tasks/write_lock.py`); `write_month` alone does not. Rerunning a month replaces it with the same result.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.lake import (
    commit_record_path,
    filesystem_for,
    is_version,
    month_versions_path,
    next_version,
    read_commit_record,
    versioned_file,
)
from tasks.months import Month
from tasks.settings import PARQUET_COMPRESSION
from tasks.write_lock import month_write_lock

PART_NAME = "part-0.parquet"
PARTITION_COLUMNS = ("service",)
logger = logging.getLogger(__name__)


def dataset_path(root: str, dataset: str, service: str) -> str:
    """The folder (or S3 prefix) of every month of one service in one dataset."""
    return f"{root.rstrip('/')}/{dataset}/service={service}"


def partition_path(root: str, dataset: str, service: str, month: Month) -> str:
    """The folder (or S3 prefix) of one month of one dataset."""
    return f"{dataset_path(root, dataset, service)}/year={month.year:04d}/month={month.month:02d}"


def write_month(tables: dict[str, pa.Table], root: str, service: str, month: Month) -> dict[str, str]:
    """Write each `{dataset: table}` of one month as one new version, commit it, and return `{dataset: file URI}`.

    The URIs are the plain view's `part-0.parquet` files. See the module docstring for the protocol.
    """
    filesystem = filesystem_for(root)
    record_path = commit_record_path(root, service, month)
    previous = read_commit_record(filesystem, record_path)
    version = next_version(previous["version"] if previous else None)

    try:  # 1. stage
        for dataset, table in tables.items():
            target = versioned_file(root, service, month, version, dataset)
            filesystem.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            data = table.drop_columns([c for c in PARTITION_COLUMNS if c in table.column_names])
            with filesystem.open(target, "wb") as handle:
                pq.write_table(data, handle, compression=PARQUET_COMPRESSION)
    except BaseException:  # tidy up when we can; after a crash, the next commit's garbage collection does
        _remove_version(filesystem, f"{month_versions_path(root, service, month)}/{version}")
        raise

    current = read_commit_record(filesystem, record_path)  # 2. commit, unless a newer version already is
    if current and current["version"] > version:
        logger.warning("%s %s: %s gives way to newer commit %s", service, month, version, current["version"])
    else:
        record = {"version": version, "datasets": list(tables), "committed_at": datetime.now(UTC).isoformat()}
        _write_atomically(filesystem, record_path, json.dumps(record, indent=2).encode(), version)
        current = record

    outputs = {}  # 3. publish the plain view of what is committed
    for dataset in current["datasets"]:
        outputs[dataset] = f"{partition_path(root, dataset, service, month)}/{PART_NAME}"
        committed = versioned_file(root, service, month, current["version"], dataset)
        _replace_with_copy(filesystem, committed, outputs[dataset])

    collect_garbage(filesystem, root, service, month)  # 4.
    return outputs


def collect_garbage(filesystem: AbstractFileSystem, root: str, service: str, month: Month) -> list[str]:
    """Delete the month's versions older than the committed one; returns the versions deleted."""
    folder = month_versions_path(root, service, month)
    record = read_commit_record(filesystem, commit_record_path(root, service, month))
    if record is None:
        return []
    old = sorted(
        name
        for path in filesystem.ls(folder, detail=False, refresh=True)
        if is_version(name := path.rstrip("/").rsplit("/", 1)[-1]) and name < record["version"]
    )
    for version in old:
        _remove_version(filesystem, f"{folder}/{version}")
    return old


def _remove_version(filesystem: AbstractFileSystem, version_folder: str) -> None:
    for path in filesystem.find(version_folder):  # file by file, as S3 must; then the empty local folder
        filesystem.rm_file(path)
    if isinstance(filesystem, LocalFileSystem) and filesystem.exists(version_folder):
        filesystem.rm(version_folder, recursive=True)


def _write_atomically(filesystem: AbstractFileSystem, path: str, data: bytes, version: str) -> None:
    """Replace `path` in one step: a local rename over it, or one S3 PUT (an object appears whole or not at all).

    The local temporary file sits in the version's own folder, so garbage collection removes it after a crash.
    """
    if not isinstance(filesystem, LocalFileSystem):
        filesystem.pipe_file(path, data)
        return
    temporary = f"{path.rsplit('/', 1)[0]}/{version}/.{uuid.uuid4().hex}.tmp"
    filesystem.pipe_file(temporary, data)
    filesystem.mv(temporary, path)


def _replace_with_copy(filesystem: AbstractFileSystem, source: str, target: str) -> None:
    """Make `target` a copy of `source`, replacing it in one step (readers see the old file or the new one)."""
    if not isinstance(filesystem, LocalFileSystem):
        filesystem.cp_file(source, target)  # a server-side copy; the object is replaced whole
        return
    filesystem.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    temporary = f"{source}.{uuid.uuid4().hex}.tmp"  # beside the source: hidden from hive readers, same disk
    try:
        filesystem.link(source, temporary)
    except OSError:  # no hard links on this filesystem
        filesystem.cp_file(source, temporary)
    filesystem.mv(temporary, target)


@task(name="load", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def load(trips: pa.Table, quarantine: pa.Table, root: str, service: str, month: Month) -> dict[str, str]:
    """Publish the month's clean trips and quarantined rows together, one writer per month at a time.

    Retried, since a rerun replaces rather than appends.
    """
    with month_write_lock(service, month):
        return write_month({"trips": trips, "quarantine": quarantine}, root, service, month)
