"""Reading the lake: a month's trips and quarantine of one run, and a consistent snapshot of every month.

`tasks/lake/tables.py` explains how a month's two commits pair. Reading a pair: open trips (latest), take the
month's write id from its application transactions, and compare it with the quarantine table's: the same id means
the latest quarantine is the pair; another (the quarantine of a writer that crashed before its trips commit, or of
a writer interleaved with this one) means reading quarantine as of the version the trips commit recorded (as
another application transaction, `<month>/quarantine`). None of this reads the log's history: the marks are part
of each table's state.

Plain Delta readers (`pl.scan_delta`, `DeltaTable(...).to_pandas()`, DuckDB through Arrow) read each table whole
and consistently, but read the two tables at their own latest versions: a plain reader of quarantine alone sees
the quarantine of a writer killed before its trips commit, until the month's next write replaces it.
`scan_parquet` over the folders does not read a Delta table at all: it would also read the files of replaced
versions, which stay until `vacuum`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from deltalake import DeltaTable

from tasks.lake.tables import LINEAGE_KEY, PARTITION_COLUMNS, month_key, open_table, table_uri
from tasks.months import Month


@dataclass
class MonthFiles:
    """One month's data files in a snapshot: both tables' files of the same run."""

    service: str
    month: Month
    write_id: int
    files: dict[str, list[str]] = field(default_factory=dict)


def month_commit(table: DeltaTable, service: str, month: Month) -> dict | None:
    """The lineage metadata of the commit of `table` (as opened) that wrote the month it holds, or None.

    The commit is found by the month's write id (its mark in the table's state), not as the newest commit of the
    month: after a restore (`rollback_lake`) the month's content is an older commit's. Reads the table's history
    (every commit's metadata). deltalake 1.6 holds Python's GIL while it does, so an S3 server running in the same
    Python process (moto in a test's thread) cannot answer it: run that one apart."""
    version, write_id = table.version(), table.transaction_version(month_key(service, month))
    if not write_id:
        return None
    for commit in table.history():
        metadata = commit.get(LINEAGE_KEY) or {}
        if commit["version"] <= version and metadata.get("write_id") == write_id and metadata.get("service") == service:
            return {**metadata, "table_version": commit["version"], "timestamp": commit.get("timestamp")}
    return None


def paired_quarantine(root: str, trips: DeltaTable, service: str, month: Month) -> DeltaTable | None:
    """The quarantine table as of the run that wrote the month's trips in `trips`; None if it never wrote one."""
    write_id = trips.transaction_version(month_key(service, month))
    latest = open_table(root, "quarantine")
    if not write_id or latest is None:  # never written, or removed by a restore (mark 0)
        return None
    if latest.transaction_version(month_key(service, month)) == write_id:
        return latest
    return open_table(root, "quarantine", version=trips.transaction_version(f"{month_key(service, month)}/quarantine"))


def _month_table(table: DeltaTable, service: str, month: Month) -> pa.Table:
    month_only = [("service", "=", service), ("year", "=", month.year), ("month", "=", month.month)]
    data = table.to_pyarrow_table(filters=month_only)  # pyarrow prunes the other months' files by partition
    return data.drop_columns([name for name in PARTITION_COLUMNS if name in data.column_names])


def read_month(root: str, service: str, month: Month) -> dict[str, pa.Table]:
    """`{"trips": ..., "quarantine": ...}` of the month, both from the same run; `{}` if it was never written.

    The tables hold the files' columns (the partition columns `service`, `year`, `month` are left out)."""
    trips = open_table(root, "trips")
    if trips is None:
        return {}
    quarantine = paired_quarantine(root, trips, service, month)
    if quarantine is None:
        return {}
    return {"trips": _month_table(trips, service, month), "quarantine": _month_table(quarantine, service, month)}


def _files_by_month(table: DeltaTable) -> dict[tuple[str, int, int], list[str]]:
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    base = table.table_uri.rstrip("/").removeprefix("file://")  # a local path for local tables, as readers expect
    found: dict[tuple[str, int, int], list[str]] = {}
    for action in actions:
        key = (action["partition.service"], int(action["partition.year"]), int(action["partition.month"]))
        found.setdefault(key, []).append(f"{base}/{action['path']}")
    return {key: sorted(files) for key, files in found.items()}


def lake_snapshot(root: str, year: int | None = None) -> list[MonthFiles]:
    """Every month in the lake (optionally of one year) with its trips and quarantine files from the same run.

    One trips snapshot decides the months; each month's quarantine files come from its paired version. The files
    are plain parquet without the partition columns, which `MonthFiles` carries: hand them to polars or Dask.
    """
    trips = open_table(root, "trips")
    quarantine = open_table(root, "quarantine")
    if trips is None or quarantine is None:
        return []
    trip_files, latest_quarantine = _files_by_month(trips), _files_by_month(quarantine)
    months = []
    for (service, y, m), files in sorted(trip_files.items()):
        if year is not None and y != year:
            continue
        month = Month(y, m)
        write_id = trips.transaction_version(month_key(service, month))
        if write_id is not None and quarantine.transaction_version(month_key(service, month)) != write_id:
            paired = paired_quarantine(root, trips, service, month)
            quarantine_files = _files_by_month(paired).get((service, y, m), []) if paired is not None else []
        else:
            quarantine_files = latest_quarantine.get((service, y, m), [])
        months.append(MonthFiles(service, month, write_id or 0, {"trips": files, "quarantine": quarantine_files}))
    return months


def month_files_bytes(root: str, service: str, month: Month) -> int:
    """The bytes of the month's data files in both tables as they are now (sizes from the Delta log, no listing)."""
    total = 0
    for name in ("trips", "quarantine"):
        table = open_table(root, name)
        if table is not None:
            actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
            key = (service, str(month.year), str(month.month))
            total += sum(
                a["size_bytes"]
                for a in actions
                if (a["partition.service"], str(a["partition.year"]), str(a["partition.month"])) == key
            )
    return total


def table_uris(root: str) -> dict[str, str]:
    """Where each table lives, for readers of a whole table (`pl.scan_delta`, `DeltaTable`)."""
    return {name: table_uri(root, name) for name in ("trips", "quarantine")}
