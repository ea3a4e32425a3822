"""Lesson 4, caching across flow runs: skip a month whose source has not changed since it was processed.

What it does. A whole month (`tasks.pipeline.etl_month`) runs as one task with `cache_policy=INPUTS +
TASK_SOURCE`: its key hashes the task's code and its inputs, and Prefect persists the small result (the month's
summary and output paths) under that key. The input that identifies the data is a *fingerprint* of the source
(URI, size, and ETag or modification time; `tasks.extract.source_fingerprint`), read from metadata in
milliseconds. A rerun with the same fingerprint is `Cached` and reads nothing; a changed file gets a new key and
is recomputed; `refresh_cache=True` recomputes regardless; `cache_expiration` bounds how long a key is trusted.

When it helps. Reruns and backfills over months that did not change: the cached rerun costs a metadata read and
a result lookup (`cache` in `benchmarks/results.md`).

What it costs, and the traps. Prefect's default policy (`INPUTS + TASK_SOURCE + RUN_ID`) only caches within one
flow run, so it never skips a rerun. A key over the data itself would hash the whole frame on every call (see
`flows/quote.py`). And a cache that outlives its outputs lies: the cached result says the month is written, so
if someone deletes the output folder, rerun with `refresh_cache=True`.

Run it: `python -m flows.caching` (cold run, cached rerun, changed source, refresh; on a copy of the sample).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

from tasks import settings
from tasks.extract import source_fingerprint
from tasks.months import Month
from tasks.pipeline import run_month
from tasks.plan import sample_plan
from tasks.zones import load_zones


@task(name="fingerprint", cache_policy=NO_CACHE)
def fingerprint(source: str) -> dict:
    """Metadata only: cheap, and it changes whenever the file does."""
    return source_fingerprint(source)


@task(
    name="etl-month-cached",
    cache_policy=INPUTS + TASK_SOURCE,
    cache_expiration=timedelta(days=30),
    persist_result=True,
    result_serializer="json",
)
def etl_month_cached(source_version: dict, service: str, month: str, root: str, engine: str, zones: str | None) -> dict:
    """A month keyed on its source's fingerprint and its parameters, never on the data itself."""
    summary = run_month(source_version["uri"], service, Month.parse(month), root, load_zones.fn(zones), engine)
    return asdict(summary)


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
    """Process each month unless an identical source was already processed into `output`."""
    root = output or settings.output_root()
    month_task = etl_month_cached.with_options(refresh_cache=refresh)
    results = []
    for month, uri in sample_plan(service, months, source):
        state = month_task(fingerprint(uri), service, str(month), root, engine, zones, return_state=True)
        get_run_logger().info("%s %s: %s", service, month, state.name)
        results.append({**state.result(), "state": state.name})
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


if __name__ == "__main__":
    for label, states in demonstrate():
        print(f"{label:40} {', '.join(states)}")
