"""Keeping the lake: vacuum, compaction and rollback, for `flows/maintenance.py` and the command line.

Every write keeps the previous version of a month readable (time travel: `DeltaTable(uri, version=N)`) until
`vacuum` deletes the files no version newer than the retention needs: a week by default
(`settings.VACUUM_RETENTION_HOURS`), so the lake can be rolled back for a week. `vacuum` also deletes the files
a killed writer left behind (they belong to no version). `compact` rewrites each month's small files into fewer,
larger ones, a new version with the same rows.

Two rollbacks:

- `rollback_lake` rolls both tables back with Delta's own `restore`: trips to the version asked for, quarantine to
  the version that trips version was paired with. A restore is one commit per table naming the old files again
  (nothing is rewritten), and months first written after that version leave the lake. Delta's restore rewinds
  files, not the application transactions that pair trips with quarantine, so each restore commit sets the
  months' marks back to their values at the restored version (quarantine first, then trips, as a write does).
- `rollback_month` writes one month again, as it was at an earlier trips version, with its paired quarantine: a
  new commit of both tables through the same `write_month` as any run (the other months stay as they are), with
  `rolled_back_to` in its lineage.
"""

from __future__ import annotations

from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import DeltaError

from tasks import settings
from tasks.lake.read import _month_table, paired_quarantine
from tasks.lake.tables import LINEAGE_KEY, TABLES, MonthCommit, month_key, open_table, storage_faults, write_month
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


def _months(*tables: DeltaTable) -> set[tuple[str, Month]]:
    """The months that have files in any of `tables` (their partitions)."""
    found = {(p["service"], int(p["year"]), int(p["month"])) for table in tables for p in table.partitions()}
    return {(service, Month(year, number)) for service, year, number in found}


def _restore(table: DeltaTable, version: int, marks: dict[str, int], metadata: dict) -> None:
    """Restore `table` to `version` in one commit that also sets the application transactions `marks`; a table
    already at `version` is left alone. Refused (`LookupError`, nothing committed) if vacuum removed its files."""
    if table.version() == version:
        return
    properties = CommitProperties(
        custom_metadata={LINEAGE_KEY: metadata}, app_transactions=[Transaction(k, v) for k, v in marks.items()]
    )
    try:
        with storage_faults(table.table_uri):
            table.restore(version, commit_properties=properties)
    except DeltaError as error:
        if "missing file" not in str(error).lower():
            raise
        raise LookupError(f"{table.table_uri} version {version}: its files were removed by vacuum ({error})") from error


def rollback_lake(root: str, trips_version: int) -> list[str]:
    """Restore the trips table to `trips_version` and quarantine to the version paired with it; returns the months
    the lake then holds, as `service YYYY-MM`. Raises `LookupError` (both tables then serve what they did) if a
    version is missing or its files were vacuumed.

    The quarantine version is the highest each month's trips commit recorded as its pair: the version the newest
    write up to `trips_version` recorded. A month whose quarantine changed after its pair (a killed writer's, or
    an interleaved writer's) keeps its own recorded pair, which `read_month` reads by time travel as before."""
    trips, quarantine = open_table(root, "trips"), open_table(root, "quarantine")
    if trips is None or quarantine is None:
        raise LookupError(f"no lake under {root}")
    try:
        earlier = _opened(root, "trips", trips_version)
    except DeltaError as error:
        raise LookupError(f"the trips table has no version {trips_version} ({error})") from error
    keys = [month_key(s, m) for s, m in _months(trips, quarantine, earlier)]
    pairs = [v for key in keys if (v := earlier.transaction_version(f"{key}/quarantine")) is not None]
    if not pairs:
        raise LookupError(f"trips version {trips_version} holds no month written with its quarantine")
    paired = _opened(root, "quarantine", max(pairs))
    keys = sorted({*keys, *(month_key(s, m) for s, m in _months(paired))})
    lineage = {"rolled_back_to": trips_version, "quarantine_version": paired.version()}
    before = quarantine.version()
    _restore(quarantine, paired.version(), {k: paired.transaction_version(k) or 0 for k in keys}, lineage)
    trips_marks = {
        f"{key}{suffix}": earlier.transaction_version(f"{key}{suffix}") or 0
        for key in keys
        for suffix in ("", "/quarantine", "/run")
    }
    try:
        _restore(trips, trips_version, trips_marks, lineage)
    except (LookupError, DeltaError):  # vacuumed files, a concurrent commit: undo the quarantine restore
        latest, undo = _opened(root, "quarantine"), _opened(root, "quarantine", before)
        _restore(latest, before, {k: undo.transaction_version(k) or 0 for k in keys}, {"rolled_back_to": None})
        raise
    return [f"{service} {month}" for service, month in sorted(_months(earlier))]


def _opened(root: str, table: str, version: int | None = None) -> DeltaTable:
    """`open_table`, for a table that must exist."""
    found = open_table(root, table, version)
    if found is None:
        raise LookupError(f"no {table} table under {root}")
    return found
