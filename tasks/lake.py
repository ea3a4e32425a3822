"""The lake's commit records: where a month's versions live, which one is committed, and how to read it whole.

`tasks/load.py` explains the protocol; this module holds what both sides of it share, so a reader never needs the
writer's code:

    <root>/_versions/service=<s>/year=<YYYY>/month=<MM>/commit.json               names the committed version
    <root>/_versions/service=<s>/year=<YYYY>/month=<MM>/<version>/trips.pq        immutable once written
    <root>/_versions/service=<s>/year=<YYYY>/month=<MM>/<version>/quarantine.pq

Readers that must see trips and quarantine of the same run use `committed_files()` or `read_month()`. Versioned
files are parquet; their `.pq` suffix and the `_versions` folder keep them out of `*.parquet` globs and away from
the dataset folders that plain hive readers scan (polars and dask read hidden files inside a dataset folder).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from tasks.months import Month
from tasks.settings import fsspec_options

VERSIONS_FOLDER = "_versions"
COMMIT_RECORD = "commit.json"
VERSIONED_SUFFIX = ".pq"
_VERSION_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}$")
_READ_ATTEMPTS = 3


def month_versions_path(root: str, service: str, month: Month) -> str:
    """The folder (or S3 prefix) holding one month's commit record and versioned files."""
    return f"{root.rstrip('/')}/{VERSIONS_FOLDER}/service={service}/year={month.year:04d}/month={month.month:02d}"


def commit_record_path(root: str, service: str, month: Month) -> str:
    return f"{month_versions_path(root, service, month)}/{COMMIT_RECORD}"


def versioned_file(root: str, service: str, month: Month, version: str, dataset: str) -> str:
    return f"{month_versions_path(root, service, month)}/{version}/{dataset}{VERSIONED_SUFFIX}"


def is_version(name: str) -> bool:
    """Whether a folder name is a version id (anything else in a month's folder is not data)."""
    return bool(_VERSION_PATTERN.match(name))


def next_version(after: str | None) -> str:
    """A new version id, sortable as text and later than `after` (the committed one) even if clocks disagree.

    Ids are UTC times to the microsecond plus a random tag, so two writers never pick the same id.
    """
    moment = datetime.now(UTC).replace(tzinfo=None)
    if after is not None:
        moment = max(moment, datetime.strptime(after.split("-")[0], _VERSION_FORMAT) + timedelta(microseconds=1))
    return f"{moment.strftime(_VERSION_FORMAT)}-{uuid.uuid4().hex[:8]}"


def filesystem_for(root: str) -> AbstractFileSystem:
    filesystem, _ = fsspec.core.url_to_fs(root, **fsspec_options(root))
    return filesystem


def read_commit_record(filesystem: AbstractFileSystem, record_path: str) -> dict | None:
    """The month's commit record, or None if the month was never committed."""
    try:
        return json.loads(filesystem.cat_file(record_path))
    except FileNotFoundError:
        return None


def committed_files(root: str, service: str, month: Month) -> dict[str, str]:
    """`{dataset: file URI}` of the month's committed version: files of one run, for every dataset.

    Empty if the month was never committed. The files are immutable but a later commit garbage-collects them,
    so read them promptly, or use `read_month`, which retries when that happens.
    """
    filesystem = filesystem_for(root)
    record = read_commit_record(filesystem, commit_record_path(root, service, month))
    if record is None:
        return {}
    return {dataset: versioned_file(root, service, month, record["version"], dataset) for dataset in record["datasets"]}


def read_month(root: str, service: str, month: Month) -> dict[str, pa.Table]:
    """Every dataset of the month's committed version, as tables; `{}` if the month was never committed.

    If a newer commit removes the files between reading the record and reading them, the record is read again.
    """
    filesystem = filesystem_for(root)
    attempts_left = _READ_ATTEMPTS
    while True:
        files = committed_files(root, service, month)
        try:
            return {dataset: _read_table(filesystem, uri) for dataset, uri in files.items()}
        except FileNotFoundError:
            attempts_left -= 1
            if not attempts_left:
                raise


def _read_table(filesystem: AbstractFileSystem, uri: str) -> pa.Table:
    with filesystem.open(uri, "rb") as handle:
        return pq.read_table(handle)
