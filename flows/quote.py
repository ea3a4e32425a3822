"""Lesson 1, `quote`: skip Prefect's look inside task arguments, and learn where the time really goes.

What it does. Before a task runs, Prefect walks through its arguments looking for futures and states to resolve
and to record as upstream dependencies. `quote(x)` (from `prefect.utilities.annotations`) hands `x` over
untouched: no walk, no resolution, no dependency edge. `opaque(future)` is the middle way for `.submit()` chains:
it resolves the future to its result but does not walk inside that result.

When it helps. The walk visits every element of a Python collection, so it costs with large lists and dicts, such
as the per-zone, per-hour trip counts this lesson passes as a list of dicts (`quote_collection` in
`benchmarks/results.md`).

When it does not. Prefect's big-data guide quotes a DataFrame, but a DataFrame is one object to the walk. On
Prefect 3 the cost of a large frame argument is the default cache policy hashing it to build a cache key, which
`quote` does not skip (`quote_dataframe`); `cache_policy=NO_CACHE` does (`no_cache_dataframe`). That is why the
pipeline's data tasks use `NO_CACHE`, or pass paths instead of frames (`flows/disk_io.py`).

What it costs. A quoted argument is invisible to Prefect: no dependency edge in the UI, and a quoted future is
passed as the future object itself, unresolved. Use `opaque` for futures.

What you see. Each run publishes its measurements as the table artifact `lesson-quote` (seconds per call,
baseline and optimized, and their ratio) and logs the same rows; `benchmarks/results.md` has them at full size.

Run it: `python -m flows.quote` (on the committed sample; `rows` limits the frame; prints its measurements).

Course page: `docs/lessons/quote.md` (`make docs` builds the site).
"""

from __future__ import annotations

import argparse

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import opaque, quote

from tasks import settings
from tasks.observe.lesson_report import publish_lesson_table
from tasks.observe.measure import Result, seconds
from tasks.observe.metrics import metered
from tasks.observe.metrics_publish import monitored
from tasks.pipeline.extract import read_trip_file
from tasks.schema import normalize_table


def hourly_zone_records(frame: pd.DataFrame) -> list[dict]:
    """Trips per pickup zone and hour as a list of small dicts: the kind of large collection `quote` is for."""
    hours = frame["pickup_datetime"].dt.floor("h")
    counts = frame.groupby([frame["pu_location_id"], hours], observed=True).size()
    return [{"zone": int(z), "hour": h.isoformat(), "trips": int(n)} for (z, h), n in counts.items()]


@metered
@task(cache_policy=NO_CACHE)
def count_records(records: list[dict]) -> int:
    """A task whose argument is a large Python collection."""
    return len(records)


@metered
@task
def count_rows_default_policy(frame: pd.DataFrame) -> int:
    """A task with Prefect's default cache policy: its key hashes every argument, frame included."""
    return len(frame)


@metered
@task(cache_policy=NO_CACHE)
def count_rows_no_cache(frame: pd.DataFrame) -> int:
    """The same task without a cache policy: nothing hashes the frame."""
    return len(frame)


@metered
@task(cache_policy=NO_CACHE)
def describe(value: object) -> str:
    """What the task actually received: shows what `quote` and `opaque` do to a future."""
    return type(value).__name__


@metered
@task(cache_policy=NO_CACHE)
def load_sample(service: str = "yellow", month: str = settings.SAMPLE_MONTHS[0]) -> pd.DataFrame:
    source = settings.SAMPLE_SOURCE.format(service=service, month=month)
    return normalize_table(read_trip_file(source), service, source).to_pandas()


def measure_calls(frame: pd.DataFrame, repeat: int = 3) -> list[Result]:
    """Time each kind of call side by side (call this inside a flow run)."""
    records = hourly_zone_records(frame)
    collection = Result(
        "quote_collection",
        f"task call seconds, list of {len(records):,} zone-hour dicts",
        seconds(lambda: count_records(records)),
        seconds(lambda: count_records(quote(records)), repeat),
        len(frame),
    )
    dataframe = Result(
        "quote_dataframe",
        "task call seconds, DataFrame argument, default cache policy",
        seconds(lambda: count_rows_default_policy(frame), repeat),
        seconds(lambda: count_rows_default_policy(quote(frame)), repeat),
        len(frame),
    )
    no_cache = Result(
        "no_cache_dataframe",
        "task call seconds, DataFrame argument: default policy vs NO_CACHE",
        dataframe.baseline,
        seconds(lambda: count_rows_no_cache(frame), repeat),
        len(frame),
    )
    return [collection, dataframe, no_cache]


ARTIFACT_KEY = "lesson-quote"


@monitored
@flow(name="lesson-quote")
def quote_lesson(rows: int | None = None) -> list[dict]:
    """Measure plain vs quoted calls on the sample (its first `rows`, if given), and show the edge `quote` drops."""
    frame = load_sample()
    frame = frame.head(rows) if rows else frame
    results = measure_calls(frame)
    upstream = load_sample.submit()
    received = {
        "plain": describe.submit(upstream).result(),  # resolved to the frame; upstream edge recorded
        "opaque": describe.submit(opaque(upstream)).result(),  # resolved, not walked; edge recorded
        "quote": describe.submit(quote(upstream)).result(),  # the future object itself; no edge
    }
    get_run_logger().info("what the task received: %s", received)
    measured = [result.to_dict() for result in results]
    publish_lesson_table(
        ARTIFACT_KEY,
        [{k: row[k] for k in ("name", "metric", "baseline", "optimized", "ratio", "rows")} for row in measured],
        "quote vs NO_CACHE: task call seconds, baseline and optimized (full size: benchmarks/results.md)",
    )
    return measured


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m flows.quote", description=__doc__.split("\n\n")[0]).parse_args(argv)
    for row in quote_lesson():
        timing = f"{row['baseline']:.4f} s -> {row['optimized']:.4f} s ({row['ratio']:.1f}x)"
        print(f"{row['name']:20} {row['metric']:65} {timing}")


if __name__ == "__main__":
    main()
