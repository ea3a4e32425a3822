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
(polars, pyarrow, dask) see each dataset's month whole (a `part-0.parquet` is replaced in one step, never
appended to), but for the instant between the two replacements of step 3, or after a crash there until the month
is written again, trips may come from the new run and quarantine from the previous one. Temporary and versioned
files live only under `_versions/` (underscored; never inside `trips/` or `quarantine/`, where polars and dask
would read even hidden files) and end in `.pq` or `.tmp`, so `*.parquet` globs never see them.

Why this design. Versioned part files read in place, with no plain copy, would store each month once, but polars
and dask read every file in a dataset folder, hidden or underscored ones too (checked with polars 2.1 and dask
2026.8): a version staged or not yet collected would show up to them as duplicate rows. Renaming a month's folder
is not atomic on S3. The price of the plain view is one extra copy per month on S3 (none on a local disk).

Concurrent writers of one month must take turns: the `load` task holds the month's Prefect concurrency slot
(`tasks/write_lock.py`); `write_month` alone does not. Rerunning a month replaces it with the same result.

The writer is `tasks/commit.py` (no Prefect import, re-exported here), the readers `tasks/lake.py`.
"""

from __future__ import annotations

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.commit import PART_NAME, collect_garbage, dataset_path, partition_path, write_month
from tasks.months import Month
from tasks.retries import network_retry_options
from tasks.write_lock import month_write_lock

__all__ = ["PART_NAME", "collect_garbage", "dataset_path", "load", "partition_path", "write_month"]


@task(name="load", cache_policy=NO_CACHE, **network_retry_options())
def load(trips: pa.Table, quarantine: pa.Table, root: str, service: str, month: Month) -> dict[str, str]:
    """Publish the month's clean trips and quarantined rows together, one writer per month at a time.

    Retried, since a rerun replaces rather than appends.
    """
    with month_write_lock(service, month):
        return write_month({"trips": trips, "quarantine": quarantine}, root, service, month)
