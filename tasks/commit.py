"""The writer's side of the month commit protocol that `tasks/load.py` explains: stage, commit, publish, collect.

Free of Prefect, so a script or a worker process that only writes months imports it in a second, not several; the
`load` task in `tasks/load.py` wraps it with the month's write lock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

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
from tasks.run_log import step_logger
from tasks.settings import PARQUET_COMPRESSION

PART_NAME = "part-0.parquet"
PARTITION_COLUMNS = ("service",)


def dataset_path(root: str, dataset: str, service: str) -> str:
    """The folder (or S3 prefix) of every month of one service in one dataset."""
    return f"{root.rstrip('/')}/{dataset}/service={service}"


def partition_path(root: str, dataset: str, service: str, month: Month) -> str:
    """The folder (or S3 prefix) of one month of one dataset."""
    return f"{dataset_path(root, dataset, service)}/year={month.year:04d}/month={month.month:02d}"


def write_month(tables: dict[str, pa.Table], root: str, service: str, month: Month) -> dict[str, str]:
    """Write each `{dataset: table}` of one month as one new version, commit it, and return `{dataset: file URI}`.

    The URIs are the plain view's `part-0.parquet` files. `tasks/load.py`'s docstring explains the protocol.
    """
    with staged_version(root, service, month, list(tables)) as staged:  # 1. stage
        filesystem = filesystem_for(root)
        for dataset, table in tables.items():
            data = table.drop_columns([c for c in PARTITION_COLUMNS if c in table.column_names])
            with filesystem.open(staged.paths[dataset], "wb") as handle:
                pq.write_table(data, handle, compression=PARQUET_COMPRESSION)
    return commit_version(root, service, month, staged.version, list(tables))  # 2.-4.


@dataclass(frozen=True)
class StagedVersion:
    """A new, uncommitted version of one month: its id and where each dataset's file must be written."""

    version: str
    paths: dict[str, str]


@contextmanager
def staged_version(root: str, service: str, month: Month, datasets: list[str]) -> Iterator[StagedVersion]:
    """Step 1 for any writer (pyarrow, a polars sink): a new version id and one staging path per dataset.

    The files are written inside the block, by whoever can write parquet to a path; if the block raises, the
    version's folder is removed (after a crash, the next commit's garbage collection removes it). Commit what
    was written with `commit_version`, after the block.
    """
    filesystem = filesystem_for(root)
    previous = read_commit_record(filesystem, commit_record_path(root, service, month))
    version = next_version(previous["version"] if previous else None)
    paths = {dataset: versioned_file(root, service, month, version, dataset) for dataset in datasets}
    for path in paths.values():
        filesystem.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    try:
        yield StagedVersion(version, paths)
    except BaseException:  # tidy up when we can
        _remove_version(filesystem, f"{month_versions_path(root, service, month)}/{version}")
        raise


def commit_version(root: str, service: str, month: Month, version: str, datasets: list[str]) -> dict[str, str]:
    """Steps 2-4 for a version whose files are all staged: commit it (unless a newer one is), publish the plain
    view and collect garbage; returns `{dataset: part-0.parquet URI}` of what is committed."""
    filesystem = filesystem_for(root)
    record_path = commit_record_path(root, service, month)
    current = read_commit_record(filesystem, record_path)  # 2. commit, unless a newer version already is
    if current and current["version"] > version:
        step_logger(__name__).warning(
            "%s %s: %s gives way to newer commit %s", service, month, version, current["version"]
        )
    else:
        record = {"version": version, "datasets": datasets, "committed_at": datetime.now(UTC).isoformat()}
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
    if filesystem.exists(temporary):  # renaming a link onto another link of the same file leaves both in place
        filesystem.rm_file(temporary)
