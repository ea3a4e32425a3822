"""One month, from its source file to the lake: extract -> check -> validate -> transform -> load.

`run_month` is the composition every run takes, on either engine: `taxi_etl`'s month task (`etl_month`, below),
the lessons, the benchmark. The engine (`tasks.pipeline.engines`: polars streams a lazy plan, pandas holds
tables) supplies the data steps and stays pure; staging the source, the write lock, the quarantine guard and the
commit are here.

`output_version` names everything besides the source file and the run's parameters that decides what a month's
outputs are: the pipeline's code, its rules and limits, and the zone table. A cache key over a month must cover
it, or an edited rule would leave months cached with the old one (`flows/caching.py`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache, partial
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from tasks import settings
from tasks.lake import table_uris, write_month, written_by_run
from tasks.lake.read import month_files_bytes
from tasks.lake.write_lock import month_write_lock
from tasks.months import Month
from tasks.observe.metrics import metered
from tasks.pipeline import rules
from tasks.pipeline.engines import MonthEngine, month_engine
from tasks.pipeline.extract import parquet_to_scan, source_fingerprint
from tasks.pipeline.report import MonthSummary
from tasks.pipeline.rules import check_row_invariant
from tasks.pipeline.staging import staging_folder
from tasks.pipeline.zones import ZoneTable
from tasks.redact import redact_url

DATASETS = ("trips", "quarantine")


def run_month(
    source: str,
    service: str,
    month: Month,
    root: str,
    zones: ZoneTable,
    engine: str = "polars",
    allow_high_quarantine: bool = False,
    write_lock: Callable[[], AbstractContextManager] = nullcontext,
) -> MonthSummary:
    """Extract, check, validate, transform and load one month into the lake; returns its summary.

    Holds `write_lock()` from the first step to the commit (`etl_month` passes the month's Prefect write limit; one
    process writing months alone needs none). The month's two datasets are written to local parquet files, then
    committed to the lake's Delta tables as they are (`tasks.lake.write_month`), with who wrote them from what.
    """
    steps = month_engine(engine)  # an unknown engine fails before anything is read
    summary = MonthSummary(service=service, month=str(month), source=source)
    run_id = current_flow_run_id()
    with write_lock(), staging_folder("month") as folder:
        if (done := written_by_run(root, service, month, run_id)) is not None:
            return summary_from_lineage(summary, done, root)  # a re-executed month of this run: already written
        files = {name: f"{folder}/{name}.parquet" for name in DATASETS}
        with parquet_to_scan(source) as (location, summary.rows_in):  # extract (http, CSV, gzip: staged on disk)
            trips, quarantine = month_datasets(steps, location, source, service, month, zones)
            steps.write({"trips": trips, "quarantine": quarantine}, files)  # the plans run here, into the files
        count_written(summary, files)
        check_quarantine_share(summary, allow_high_quarantine)
        commit = write_month(root, service, month, files, month_lineage_record(summary, source, zones, run_id))  # load
    summary.outputs, summary.versions = table_uris(root), commit.versions
    summary.bytes_read, summary.bytes_written = source_size(source), month_files_bytes(root, service, month)
    summary.finished_at = time.time()
    return summary


def month_datasets(
    steps: MonthEngine, location: str, source: str, service: str, month: Month, zones: ZoneTable
) -> tuple:
    """(trips, quarantine) of the month's file at `location`, in the engine's own form (lazy in polars)."""
    rows = steps.read(location, service, source)  # the file's columns mapped onto the canonical schema
    rows = steps.check(rows, month)  # a file mostly of another month is refused before any row is judged
    clean, quarantine = steps.validate(rows, month, zones)  # each row clean, or quarantined with its reason
    return steps.transform(clean, zones), quarantine  # durations, speeds, tip fraction, zone names


def read_month_in_memory(
    source: str, service: str, month: Month, zones: ZoneTable, engine: str
) -> tuple[int, pa.Table, pa.Table]:
    """`run_month`'s steps without the load, in memory: (rows in, trips, quarantined rows). For a lesson that needs
    the month's tables themselves (to return or to cache them); `run_month` keeps a month out of memory."""
    steps = month_engine(engine)
    with parquet_to_scan(source) as (location, rows_in):
        trips, quarantine = month_datasets(steps, location, source, service, month, zones)
        return rows_in, steps.to_arrow(trips), steps.to_arrow(quarantine)


def count_written(summary: MonthSummary, files: dict[str, str]) -> None:
    """Rows clean and quarantined from the files' footers, reasons from the quarantine file's one column; the
    invariant rows in = clean + quarantined is checked, not assumed."""
    summary.rows_clean = pq.read_metadata(files["trips"]).num_rows
    summary.rows_quarantined = pq.read_metadata(files["quarantine"]).num_rows
    reasons = pl.scan_parquet(files["quarantine"]).group_by("reason").agg(rows=pl.len()).collect()
    summary.quarantined_by_reason = dict(reasons.sort(["rows", "reason"], descending=[True, False]).iter_rows())
    check_row_invariant(summary.rows_in, summary.rows_clean, summary.rows_quarantined, f"{summary.month}")


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


def current_flow_run_id() -> str | None:
    """The flow run this month runs in (a string), or None outside one."""
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None


@lru_cache(maxsize=64)
def deployment_name(run_id: str) -> str | None:
    """The name of the deployment that started flow run `run_id`, or None: read once per run and process.

    `prefect.runtime.deployment.name` asks the API on every use, through a new client each time: the flow run
    (even in a run started without a deployment, whose context already says so) and then the deployment."""
    context = FlowRunContext.get()
    if context and context.flow_run and str(context.flow_run.id) == run_id and not context.flow_run.deployment_id:
        return None
    from prefect.runtime import deployment

    return deployment.name


def month_lineage_record(summary: MonthSummary, source: str, zones: ZoneTable, run_id: str | None) -> dict:
    """What the month's commits record of who wrote it, from what (`tasks/lake/lineage.py`)."""
    fingerprint = source_fingerprint(source)
    return {
        "flow_run_id": run_id,
        "deployment": deployment_name(run_id) if run_id else None,
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
OUTPUT_INDEPENDENT = frozenset({"observe", "__init__.py", "plan.py", "publication.py", "serializers.py", "mart.py"})
TASKS_DIR = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """A digest of the source of every module under tasks/ that shapes a month's outputs (engines included).

    Any edit there, a rule's threshold, a derived column, a schema mapping, changes it: conservative on purpose,
    since a cache that misses a real change serves wrong data, while one that misses a cosmetic one costs a rerun.
    """
    digest = hashlib.sha256()
    for path in sorted(TASKS_DIR.rglob("*.py")):
        if not OUTPUT_INDEPENDENT.intersection(path.relative_to(TASKS_DIR).parts):
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

    It holds the month's Prefect write limit (`tasks/lake/write_lock.py`) from its first step to its commit, so two runs
    writing the same month take turns; months of other dates or services run in parallel. A re-executed month of
    the same flow run (a retried task whose first try committed, a Dask worker's lost result) is not written twice:
    its summary comes from the lineage its commit recorded."""
    lock = partial(month_write_lock, service, month)
    return run_month(source, service, month, root, zones, engine, allow_high_quarantine, write_lock=lock)
