"""Load: write a month's trips and quarantine as hive-partitioned parquet (zstd), replacing it atomically.

Layout under the output root (a folder or an `s3://` prefix):

    trips/service=<s>/year=<YYYY>/month=<MM>/part-0.parquet
    quarantine/service=<s>/year=<YYYY>/month=<MM>/part-0.parquet

`service`, `year` and `month` live in the path, not in the files (hive-aware readers such as
`pl.scan_parquet(..., hive_partitioning=True)` or `pyarrow.dataset` add them back). Each month is one file per
dataset, written under a hidden temporary name and then moved into place: a local rename is atomic and an S3
object appears whole or not at all, so a reader never sees half a month and a crash leaves only a hidden
temporary file. Rerunning a month replaces it: the result is the same however often it runs.
"""

from __future__ import annotations

import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.months import Month
from tasks.retries import network_retry_options
from tasks.settings import PARQUET_COMPRESSION, storage_options

PART_NAME = "part-0.parquet"
PARTITION_COLUMNS = ("service",)


def dataset_path(root: str, dataset: str, service: str) -> str:
    """The folder (or S3 prefix) of every month of one service in one dataset."""
    return f"{root.rstrip('/')}/{dataset}/service={service}"


def partition_path(root: str, dataset: str, service: str, month: Month) -> str:
    """The folder (or S3 prefix) of one month of one dataset."""
    return f"{dataset_path(root, dataset, service)}/year={month.year:04d}/month={month.month:02d}"


def write_month(tables: dict[str, pa.Table], root: str, service: str, month: Month) -> dict[str, str]:
    """Write each `{dataset: table}` for one month and return `{dataset: file URI}`.

    All files are staged before any is published, so a failure while writing leaves the previous month intact.
    """
    filesystem, _ = fsspec.core.url_to_fs(root, **storage_options(root))
    staged: dict[str, tuple[str, str]] = {}
    try:
        for dataset, table in tables.items():
            folder = partition_path(root, dataset, service, month)
            filesystem.makedirs(folder, exist_ok=True)
            staged[dataset] = (f"{folder}/.{PART_NAME}.{uuid.uuid4().hex}.tmp", f"{folder}/{PART_NAME}")
            data = table.drop_columns([c for c in PARTITION_COLUMNS if c in table.column_names])
            with filesystem.open(staged[dataset][0], "wb") as handle:
                pq.write_table(data, handle, compression=PARQUET_COMPRESSION)
    except BaseException:
        for temporary, _ in staged.values():
            if filesystem.exists(temporary):
                filesystem.rm(temporary)
        raise
    for temporary, final in staged.values():
        filesystem.mv(temporary, final)
    return {dataset: final for dataset, (_, final) in staged.items()}


@task(name="load", cache_policy=NO_CACHE, **network_retry_options())
def load(trips: pa.Table, quarantine: pa.Table, root: str, service: str, month: Month) -> dict[str, str]:
    """Publish the month's clean trips and quarantined rows; retried, since a rerun replaces rather than appends."""
    return write_month({"trips": trips, "quarantine": quarantine}, root, service, month)
