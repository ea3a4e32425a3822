"""One function per lesson: each runs the lesson's optimized variant and its baseline on the same data, alike.

A case takes the run's `Size` and a scratch folder and returns `Result`s built `from_repeats`, so every row
carries its samples; `lesson` names the module it measures. To add a row, add a case and list it in `CASES`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.utilities.annotations import quote as quoted

from benchmarks.anchor_case import anchor_month
from benchmarks.dask_case import dask_case
from benchmarks.harness import Size, first_month_frame, months_on_disk
from benchmarks.monitoring_case import monitoring_overhead_case
from benchmarks.storage_cases import s3_results_case, serializer_case
from benchmarks.year_cases import cache_year_case, fresh_paths
from flows import caching, disk_io, quote
from flows.etl import taxi_etl
from tasks.months import Month
from tasks.observe.measure import Result, interleaved_timings, map_in_context, timings
from tasks.pipeline.month import run_month
from tasks.pipeline.zones import load_zone_table


def at_least(result: Result, times: float, target: str = "") -> Result:
    """Set a result's target, a minimum ratio, and whether this run met it."""
    result.target, result.met = target or f">= {times:g}x", result.ratio >= times
    return result


def quote_case(size: Size, workdir: Path) -> list[Result]:
    frame = first_month_frame(size, workdir)
    records = quote.hourly_zone_records(frame)

    @flow(name="bench-quote")
    def time_calls() -> dict[str, list[float]]:
        return interleaved_timings(
            {
                "collection": lambda: quote.count_records(records),
                "collection_quoted": lambda: quote.count_records(quoted(records)),
                "frame": lambda: quote.count_rows_default_policy(frame),
                "frame_quoted": lambda: quote.count_rows_default_policy(quoted(frame)),
                "frame_no_cache": lambda: quote.count_rows_no_cache(frame),
            },
            size.repeats,
        )

    samples, rows, lesson = time_calls(), len(frame), "flows/quote.py"
    return [
        at_least(
            Result.from_repeats(
                "quote_collection",
                f"task call seconds, list of {len(records):,} zone-hour dicts: plain vs quote()",
                samples["collection"],
                samples["collection_quoted"],
                rows,
                lesson=lesson,
            ),
            20,
        ),
        Result.from_repeats(
            "quote_dataframe",
            "task call seconds, DataFrame argument, default cache policy: plain vs quote()",
            samples["frame"],
            samples["frame_quoted"],
            rows,
            lesson=lesson,
            target="none: shows quote does not help here",
        ),
        at_least(
            Result.from_repeats(
                "no_cache_dataframe",
                "task call seconds, DataFrame argument: default policy vs NO_CACHE",
                samples["frame"],
                samples["frame_no_cache"],
                rows,
                lesson=lesson,
            ),
            20,
        ),
    ]


def cache_case(size: Size, workdir: Path) -> list[Result]:
    """Each repeat links the months under paths never cached before, then runs cold and reruns cached."""
    source, months = months_on_disk(size, workdir, size.disk_io_months)
    cold, cached, cached_without_heartbeats = [], [], []
    for repeat in range(size.repeats):
        template = fresh_paths(source, months, workdir / f"cache-source-{repeat}")
        output = str(workdir / f"cache-out-{repeat}")
        run = partial(caching.cached_etl, months=months, source=template, output=output)
        cold += timings(run, 1)
        cached += timings(run, 1)
        cached_without_heartbeats += timings(without_heartbeats(run), 1)
    return [
        at_least(
            Result.from_repeats(
                "cache",
                f"flow seconds over {len(months)} months: cold run vs cached rerun",
                cold,
                cached,
                size.rows,
                lesson="flows/caching.py",
            ),
            20,
            "cached <= 5% of cold (>= 20x)",
        ),
        Result.from_repeats(
            "cache_without_heartbeats",
            f"flow seconds over {len(months)} months: cold run vs cached rerun with flow-run heartbeats off (the"
            " rerun without the wait for the heartbeat thread's 1 s sleep, `overhead_heartbeats`)",
            cold,
            cached_without_heartbeats,
            size.rows,
            lesson="flows/caching.py",
            target="none: what the cached rerun costs apart from the heartbeat's join",
        ),
    ]


def disk_io_case(size: Size, workdir: Path) -> list[Result]:
    """Peak memory of each variant's flow process, each repeat in fresh processes, `Size.concurrent_processes`
    repeats at once (a process's peak is its own; a full run's two in-memory flows hold up to 6 GiB together)."""
    source, months = months_on_disk(size, workdir, size.disk_io_months)
    outputs = [str(workdir / f"disk-io-out-{repeat}") for repeat in range(size.repeats)]
    with ThreadPoolExecutor(size.concurrent_processes) as pool:  # each process's own peak: concurrency can't move it
        runs = list(map_in_context(pool, partial(disk_io.compare_in_fresh_processes, months, source), outputs))
    if any(both["memory"]["report"] != both["paths"]["report"] for both in runs):
        raise AssertionError("disk_io variants disagree")
    memory = [both["memory"]["peak_rss_mb"] for both in runs]  # MiB, whatever the key says
    paths = [both["paths"]["peak_rss_mb"] for both in runs]
    return [
        at_least(
            Result.from_repeats(
                "disk_io",
                f"flow process peak RSS over {len(months)} months: results in memory vs paths",
                memory,
                paths,
                size.rows,
                unit="MiB",
                lesson="flows/disk_io.py",
            ),
            2,
            "paths <= 50% of in-memory (>= 2x)",
        )
    ]


def overhead_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, 1)
    uri, month = source.format(service="yellow", month=months[0]), Month.parse(months[0])
    zones = load_zone_table()
    samples = interleaved_timings(
        {
            "flow": lambda: taxi_etl(months=months, source=uri, output=str(workdir / "prefect")),
            "flow, no heartbeats": without_heartbeats(
                lambda: taxi_etl(months=months, source=uri, output=str(workdir / "prefect-no-heartbeats"))
            ),
            "plain": lambda: run_month(uri, "yellow", month, str(workdir / "plain"), zones, "polars"),
        },
        size.repeats,
    )
    result = Result.from_repeats(
        "overhead",
        "seconds for one month: taxi_etl flow vs the same functions without Prefect (a cost: lower is better)",
        samples["flow"],
        samples["plain"],
        size.rows,
        lesson="flows/etl.py",
        target="flow <= 1.25x plain",
    )
    result.met = result.ratio <= 1.25
    heartbeats = Result.from_repeats(
        "overhead_heartbeats",
        "seconds for one month: taxi_etl with Prefect's default flow-run heartbeats vs none (a cost: the sync flow"
        " waits for its heartbeat thread's 1 s sleep to end as it returns)",
        samples["flow"],
        samples["flow, no heartbeats"],
        size.rows,
        lesson="flows/etl.py",
        target="none: shows what the heartbeat thread's join costs a run",
    )
    return [result, heartbeats]


def without_heartbeats(work: Callable[[], Any]) -> Callable[[], Any]:
    """`work` with flow-run heartbeats off (on by default in prefect 3.9.1; no environment value turns them off)."""

    def run() -> Any:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            return work()

    return run


def anchor_case(size: Size, workdir: Path) -> list[Result]:
    """The project's month against DuckDB's SQL of the same plan, in core-seconds (`benchmarks/anchor_case.py`)."""
    source, months = months_on_disk(size, workdir, 1)
    side_by_side = size.concurrent_processes if size.timed_side_by_side else 1
    uri = source.format(service="yellow", month=months[0])
    return [anchor_month(uri, months[0], size.rows, size.repeats, side_by_side)]


CASES: list[tuple[str, Callable[[Size, Path], list[Result]]]] = [
    ("quote", quote_case),
    ("cache", cache_case),
    ("disk_io", disk_io_case),
    ("serializer", serializer_case),
    ("s3_results", s3_results_case),
    ("dask", dask_case),
    ("overhead", overhead_case),
    ("anchor", anchor_case),
    ("cache_year", cache_year_case),
    ("monitoring_overhead", monitoring_overhead_case),
]
