"""Keeping the lake: vacuum, compaction and rollback, for `flows/maintenance.py` and the command line.

Every write keeps the previous version of a month readable (time travel: `DeltaTable(uri, version=N)`) until
`vacuum` deletes the files no version newer than the retention needs: a week by default
(`settings.VACUUM_RETENTION_HOURS`), so a bad month can be rolled back for a week. `vacuum` also deletes the files
a killed writer left behind (they belong to no version). `compact` rewrites each month's small files into fewer,
larger ones, a new version with the same rows.

A rollback writes the month again, as it was at an earlier trips version, with its paired quarantine: a new
commit of both tables, through the same `write_month` as any run, so readers and the pairing see an ordinary write
(Delta's own `restore` would rewind a whole table's files but not the application transactions that pair trips with
quarantine). The rolled-back content is recorded in the new commits' lineage (`rolled_back_to`).
"""

from __future__ import annotations

from tasks import settings
from tasks.lake.read import _month_table, paired_quarantine
from tasks.lake.tables import TABLES, MonthCommit, open_table, write_month
from tasks.months import Month


def vacuum(root: str, retention_hours: int | None = None) -> dict[str, int]:
    """Delete the data files no version newer than `retention_hours` (default a week) needs, in both tables;
    returns how many files each table lost. A retention under Delta's own week must be asked for explicitly."""
    hours = settings.VACUUM_RETENTION_HOURS if retention_hours is None else retention_hours
    removed = {}
    for name in TABLES:
        table = open_table(root, name)
        if table is not None:
            files = table.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
            removed[name] = len(files)
    return removed


def compact(root: str) -> dict[str, dict]:
    """Rewrite small files into larger ones in both tables (`optimize.compact`); returns Delta's metrics per table."""
    return {name: table.optimize.compact() for name in TABLES if (table := open_table(root, name)) is not None}


def rollback_month(root: str, service: str, month: Month, trips_version: int) -> MonthCommit:
    """Write the month again as the lake served it at `trips_version` of the trips table (trips and the quarantine
    of the same run); raises `LookupError` if the month was not in the lake at that version."""
    earlier = open_table(root, "trips", version=trips_version)
    quarantine = paired_quarantine(root, earlier, service, month) if earlier is not None else None
    if earlier is None or quarantine is None:
        raise LookupError(f"{service} {month} is not in the trips table at version {trips_version}")
    try:
        data = {"trips": _month_table(earlier, service, month), "quarantine": _month_table(quarantine, service, month)}
    except FileNotFoundError as error:
        raise LookupError(
            f"{service} {month} at trips version {trips_version}: its files were removed by vacuum ({error})"
        ) from error
    return write_month(root, service, month, data, {"rolled_back_to": trips_version})


def rollback_lake(root: str, trips_version: int) -> list[str]:
    """Roll back every month the trips table held at `trips_version` to its content then (months first written
    later stay); returns the months rolled back, as `service YYYY-MM`."""
    earlier = open_table(root, "trips", version=trips_version)
    if earlier is None:
        raise LookupError(f"no trips table under {root}")
    months = sorted({(p["service"], int(p["year"]), int(p["month"])) for p in earlier.partitions()})
    for service, year, number in months:
        rollback_month(root, service, Month(year, number), trips_version)
    return [f"{service} {Month(year, number)}" for service, year, number in months]
