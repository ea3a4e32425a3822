"""Lesson 4, caching across flow runs: skip a month when nothing that decides its output has changed.

What it does. A whole month (`tasks.pipeline.month.run_month`) runs as one task with `cache_policy=(INPUTS - "zones")
+ TASK_SOURCE`: its key hashes the task's code and its inputs, and Prefect persists the small result (the month's
summary and output paths) under that key. The inputs are chosen so the key covers everything that decides the
month's outputs, and nothing that is expensive to hash:
- a *fingerprint* of the source (URI, size, and ETag or modification time; `tasks.pipeline.extract.source_fingerprint`),
  read from metadata in milliseconds, instead of the data itself (in the flow itself: a task run of its own would
  cost a cached rerun more than the read);
- the *output version* (`tasks.pipeline.month.output_version`): a digest of the source of the pipeline modules under
  `tasks/` (validation rules, engines, schema, transforms, writer), of the rules and limits in force, and of the
  zone table's content. The wrapper's own source (`TASK_SOURCE`) is only a thin shell around them;
- the service, month, engine and output root.
The zone table itself is passed to the task but left out of the key (`INPUTS - "zones"`): its digest is in the
output version. A rerun with all of these unchanged is `Cached` and reads nothing; an edited rule, a new zone
table or a changed file gets a new key and is recomputed; `refresh_cache=True` recomputes regardless;
`cache_expiration` bounds how long a key is trusted.

When it helps. Reruns and backfills over months that did not change: the cached rerun costs a metadata read and
a result lookup (`cache` in `benchmarks/results.md`).

What it costs, and the traps. Prefect's default policy (`INPUTS + TASK_SOURCE + RUN_ID`) only caches within one
flow run, so it never skips a rerun. A key over the data itself would hash the whole frame on every call (see
`flows/quote.py`). A key over the task's source alone would keep serving months validated by old rules. And a
cache that outlives its outputs lies: the cached result says the month is written, so if someone deletes the
output folder, rerun with `refresh_cache=True`.

Where it writes. `output`, else `output/lessons/caching/` (`settings.lesson_output_root`): never the lake.

What you see. Each run publishes the table artifact `lesson-caching` (per month: state, `Completed` or `Cached`,
seconds, rows) and logs the same rows.

Run it: `python -m flows.caching` (cold run, cached rerun, changed source, refresh; on a copy of the sample).

Course page: `docs/lessons/caching.md` (`make docs` builds the site).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from tasks import settings
from tasks.months import Month
from tasks.observe.lesson_report import publish_lesson_table
from tasks.observe.metrics import metered
from tasks.observe.metrics_publish import monitored
from tasks.pipeline.extract import source_fingerprint
from tasks.pipeline.month import output_version, run_month
from tasks.pipeline.plan import sample_plan
from tasks.pipeline.zones import ZoneTable, load_zones

ARTIFACT_KEY = "lesson-caching"


@metered
@task(
    name="run-month-cached",
    task_run_name="run-month-cached-{service}-{month}",
    cache_policy=(INPUTS - "zones") + TASK_SOURCE,
    cache_expiration=timedelta(days=30),
    persist_result=True,
    result_serializer="json",
)
def run_month_cached(
    source_version: dict,
    pipeline_version: dict,
    service: str,
    month: str,
    root: str,
    engine: str,
    zones: ZoneTable,
) -> dict:
    """`run_month`, cached under a key of its source's fingerprint, the pipeline's output version and its
    parameters (the lesson: what a month's key must cover)."""
    summary = run_month(source_version["uri"], service, Month.parse(month), root, zones, engine)
    return asdict(summary)


@monitored
@flow(name="lesson-caching")
def cached_etl(
    service: str = "yellow",
    months: list[str] | None = None,
    source: str = settings.SAMPLE_SOURCE,
    output: str | None = None,
    engine: str = "polars",
    zones: str | None = None,
    refresh: bool = False,
) -> list[dict]:
    """Process each month unless the same source, through the same pipeline, was already processed into `output`."""
    root = output or settings.lesson_output_root("caching")
    zone_table = load_zones(zones)
    version = output_version(zone_table)
    get_run_logger().info("output version (code, rules, zones): %s", version)
    month_task = run_month_cached.with_options(refresh_cache=refresh)
    results = []
    for month, uri in sample_plan(service, months, source):
        started = time.perf_counter()
        fingerprint = source_fingerprint(uri)  # metadata only: cheap, and it changes whenever the file does
        state = month_task(fingerprint, version, service, str(month), root, engine, zone_table, return_state=True)
        results.append({**state.result(), "state": state.name, "seconds": round(time.perf_counter() - started, 3)})
    publish_lesson_table(
        ARTIFACT_KEY,
        [{k: r[k] for k in ("month", "state", "seconds", "rows_in", "rows_clean")} for r in results],
        "per month: Completed (computed) or Cached (skipped), and the seconds it took "
        "(full size: `cache` in benchmarks/results.md)",
    )
    return results


def demonstrate() -> list[tuple[str, list[str]]]:
    """Cold run, cached rerun, changed source, forced refresh: the state of each month's task each time."""
    workdir = Path(tempfile.mkdtemp(prefix="lesson-caching-"))
    for month in settings.SAMPLE_MONTHS:
        name = f"yellow_tripdata_{month}.parquet"
        shutil.copy(settings.SAMPLE_DIR / name, workdir / name)
    source = str(workdir / "{service}_tripdata_{month}.parquet")
    steps = []
    for label, action, refresh in [
        ("cold run", None, False),
        ("rerun, nothing changed", None, False),
        ("rerun after the 2025-02 file changed", lambda: (workdir / "yellow_tripdata_2025-02.parquet").touch(), False),
        ("rerun with refresh_cache=True", None, True),
    ]:
        if action:
            action()
        runs = cached_etl(source=source, output=str(workdir / "out"), refresh=refresh)
        steps.append((label, [f"{r['month']} {r['state']}" for r in runs]))
    return steps


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m flows.caching", description=__doc__.split("\n\n")[0]).parse_args(argv)
    for label, states in demonstrate():
        print(f"{label:40} {', '.join(states)}")


if __name__ == "__main__":
    main()
