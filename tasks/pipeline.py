"""One month end to end as a single plain function, and as a single task.

`flows/etl.py` runs each step as its own task so the UI shows every step. The lessons often want a month as one
unit instead: to cache it (`flows/caching.py`), map it over Dask workers (`flows/dask_runner.py`), pass its output
by path (`flows/disk_io.py`) or compare it with and without Prefect (the benchmark's `overhead`). They all use
this one composition of the same pure functions.

`output_version` names everything besides the source file and the run's parameters that decides what a month's
outputs are: the pipeline's code, its rules and limits, and the zone table. A cache key over a month must cover
it, or an edited rule would leave months cached with the old one (`flows/caching.py`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import rules, settings
from tasks.engines import get_engine
from tasks.engines.polars_month import stream_month
from tasks.extract import read_trip_file, source_fingerprint
from tasks.lake import table_uris, write_month, written_by_run
from tasks.lake.read import month_files_bytes
from tasks.metrics import metered
from tasks.months import Month
from tasks.redact import redact_url
from tasks.report import MonthSummary
from tasks.schema import normalize_table
from tasks.transform import add_derived_columns
from tasks.validate import count_reasons, split_valid
from tasks.write_lock import month_write_lock
from tasks.zones import ZoneTable


def read_month_in_memory(
    source: str, service: str, month: Month, zones: ZoneTable, engine: str
) -> tuple[int, pa.Table, pa.Table]:
    """Read, normalize, validate and transform one month in memory: (rows in, enriched trips, quarantined rows).

    The pandas engine's way, and any lesson's that needs the month's tables themselves (to return or to cache
    them). Each intermediate stage is freed as soon as the next exists, but the month is held whole, several
    times at the peak: `run_month` with the polars engine streams instead.
    """
    table = normalize_table(read_trip_file(source), service, source)
    rows_in = table.num_rows
    clean, quarantine = split_valid(table, month, zones.known_location_ids(), engine)
    del table  # peak memory is what limits a month
    return rows_in, add_derived_columns(clean, zones.table, engine), quarantine


def run_month(
    source: str,
    service: str,
    month: Month,
    root: str,
    zones: ZoneTable,
    engine: str,
    allow_high_quarantine: bool = False,
) -> MonthSummary:
    """Extract, normalize, validate, transform and load one month; returns its summary (no tables are kept).

    With `engine="polars"` the month is one lazy plan from scan to local parquet files, streamed in bounded memory
    (`tasks.engines.polars_month`); with `"pandas"` it is read and transformed in memory, the comparison the
    parity tests hold to the same output. Either way it is loaded into the lake's Delta tables (`tasks.lake`).
    No write lock is taken: one process writing months (a script, the benchmark) needs none; `etl_month` takes it.
    """
    return _run_month(source, service, month, root, zones, engine, nullcontext, allow_high_quarantine)


class QuarantineShareError(ValueError):
    """A month whose quarantined share is above `settings.max_quarantine_share()`: refused before its commit."""


def check_quarantine_share(summary: MonthSummary, allowed: bool) -> None:
    """Refuse a month most of whose rows break a rule (a file of zeros, a mislabelled column) unless `allowed`:
    replacing a good month with an empty one is a mistake to stop, not to commit. The previous month stays."""
    limit = settings.max_quarantine_share()
    share = summary.rows_quarantined / summary.rows_in if summary.rows_in else 0.0
    if share > limit and not allowed:
        raise QuarantineShareError(
            f"{summary.service} {summary.month}: {share:.0%} of {summary.rows_in:,} rows quarantined "
            f"(limit {limit:.0%}, TAXI_MAX_QUARANTINE_SHARE); nothing was written. If this is right, run again "
            f"with allow_high_quarantine=True"
        )


def _run_month(
    source: str,
    service: str,
    month: Month,
    root: str,
    zones: ZoneTable,
    engine: str,
    write_lock: Callable[[], AbstractContextManager],
    allow_high_quarantine: bool = False,
) -> MonthSummary:
    """extract -> check -> validate -> transform -> load, holding `write_lock()` from the first step to the commit."""
    get_engine(engine)  # an unknown engine fails before anything is read
    summary = MonthSummary(service=service, month=str(month), source=source)
    run_id = current_flow_run_id()
    with write_lock(), tempfile.TemporaryDirectory(prefix="taxi-month-") as folder:
        if (done := written_by_run(root, service, month, run_id)) is not None:
            return summary_from_lineage(summary, done, root)  # a re-executed month of this run: already written
        if engine == "polars":
            data, counts = stream_month(source, service, month, zones, folder)
            summary.rows_in, summary.rows_clean = counts.rows_in, counts.rows_clean
            summary.rows_quarantined = counts.rows_quarantined
            summary.quarantined_by_reason = counts.quarantined_by_reason
        else:
            summary.rows_in, trips, quarantine = read_month_in_memory(source, service, month, zones, engine)
            data = {"trips": trips, "quarantine": quarantine}
            summary.rows_clean, summary.rows_quarantined = trips.num_rows, quarantine.num_rows
            summary.quarantined_by_reason = count_reasons(quarantine)
        check_quarantine_share(summary, allow_high_quarantine)
        commit = write_month(root, service, month, data, month_lineage_record(summary, source, zones, run_id))
    summary.outputs, summary.versions = table_uris(root), commit.versions
    summary.bytes_read, summary.bytes_written = source_size(source), month_files_bytes(root, service, month)
    summary.finished_at = time.time()
    return summary


def current_flow_run_id() -> str | None:
    """The flow run this month runs in (a string), or None outside one."""
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None


def month_lineage_record(summary: MonthSummary, source: str, zones: ZoneTable, run_id: str | None) -> dict:
    """What the month's commits record of who wrote it, from what (`tasks/lake/lineage.py`)."""
    from prefect.runtime import deployment

    fingerprint = source_fingerprint(source)
    return {
        "flow_run_id": run_id,
        "deployment": deployment.name if run_id else None,
        "source": redact_url(source),
        "source_fingerprint": {**fingerprint, "uri": redact_url(str(fingerprint["uri"]))},
        "rows_in": summary.rows_in,
        "rows_clean": summary.rows_clean,
        "rows_quarantined": summary.rows_quarantined,
        "output_version": output_version(zones),
    }


def summary_from_lineage(summary: MonthSummary, written: dict[str, int], root: str) -> MonthSummary:
    """The summary of a month this run already wrote, from the lake's state (nothing is read or written again)."""
    summary.rows_clean, summary.rows_quarantined = written["rows_clean"], written["rows_quarantined"]
    summary.rows_in = summary.rows_clean + summary.rows_quarantined
    summary.outputs = table_uris(root)
    summary.versions = {"trips": written["trips_version"], "quarantine": written["quarantine_version"]}
    summary.finished_at = time.time()
    return summary


def source_size(source: str) -> int:
    """The bytes of the month's source file (metadata only), for its metrics record."""
    return int(source_fingerprint(source)["size"] or 0)


# Modules under tasks/ that cannot change a month's outputs; every other module's source is in `code_version`.
OUTPUT_INDEPENDENT_MODULES = frozenset(
    {"__init__.py", "lesson_report.py", "plan.py", "serializers.py", "run_log.py"}
    | {"metrics.py", "metrics_publish.py", "prometheus.py", "perf_history.py"}  # monitoring reads runs, never rows
)
TASKS_DIR = Path(__file__).resolve().parent


def code_version() -> str:
    """A digest of the source of every module under tasks/ that shapes a month's outputs (engines included).

    Any edit there, a rule's threshold, a derived column, a schema mapping, changes it: conservative on purpose,
    since a cache that misses a real change serves wrong data, while one that misses a cosmetic one costs a rerun.
    """
    digest = hashlib.sha256()
    for path in sorted(TASKS_DIR.rglob("*.py")):
        if path.name not in OUTPUT_INDEPENDENT_MODULES:
            digest.update(path.relative_to(TASKS_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def rules_version() -> str:
    """A digest of the validation rules and the limits in force now (settings may differ from the source)."""
    described = {
        "rules": [(rule.reason, rule.description) for rule in rules.RULES],
        "limits": [settings.MAX_TRIP_HOURS, settings.MAX_TRIP_MILES, settings.MAX_AVG_SPEED_MPH],
        "compression": settings.PARQUET_COMPRESSION,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def zone_table_version(zones: ZoneTable) -> str:
    """A digest of the zone table's content (not its origin: the same table cached or downloaded is the same)."""
    return hashlib.sha256(json.dumps(zones.table.to_pydict(), sort_keys=True).encode()).hexdigest()[:16]


def output_version(zones: ZoneTable) -> dict[str, str]:
    """What, besides the source and the parameters, decides a month's outputs: put it in any cache key."""
    return {"code": code_version(), "rules": rules_version(), "zones": zone_table_version(zones)}


@metered
@task(name="etl-month", cache_policy=NO_CACHE)
def etl_month(
    source: str,
    service: str,
    month: Month,
    root: str,
    zones: ZoneTable,
    engine: str,
    allow_high_quarantine: bool = False,
) -> MonthSummary:
    """A whole month as one task: small inputs (a path, a month), a small output (its summary).

    It holds the month's Prefect write limit (`tasks/write_lock.py`) from its first step to its commit, so two runs
    writing the same month take turns; months of other dates or services run in parallel. A re-executed month of
    the same flow run (a retried task whose first try committed, a Dask worker's lost result) is not written twice:
    its summary comes from the lineage its commit recorded."""
    lock = partial(month_write_lock, service, month)
    return _run_month(source, service, month, root, zones, engine, lock, allow_high_quarantine)
