"""One function per optimization: each runs the lesson's optimized variant and its baseline on the same data."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

from data.generate import write_month
from flows import caching, compression, dask_runner, disk_io, quote
from flows.etl import taxi_etl
from servers import start_prefect, stop
from tasks import settings
from tasks.extract import read_trip_file
from tasks.measure import Result, seconds
from tasks.months import Month
from tasks.pipeline import run_month
from tasks.schema import normalize_table
from tasks.zones import load_zone_table

MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]


@dataclass
class Size:
    rows: int
    disk_io_months: int
    dask_months: int
    serializer_rows: int

    @classmethod
    def full(cls) -> Size:
        return cls(rows=3_000_000, disk_io_months=3, dask_months=8, serializer_rows=300_000)

    @classmethod
    def quick(cls) -> Size:
        return cls(rows=50_000, disk_io_months=2, dask_months=3, serializer_rows=20_000)


@contextmanager
def prefect_server(workdir: Path) -> Iterator[str]:
    """The Prefect server to run against: the configured one (as in a deployment's run), or a new one for the
    whole run, stopped afterwards (Dask worker processes need a real server's URL)."""
    if configured := PREFECT_API_URL.value():
        os.environ["PREFECT_API_URL"] = configured  # for the child processes this run starts
        yield configured
        return
    os.environ["PREFECT_HOME"] = str(workdir / "prefect-home")  # for the server and child processes
    settings.RUN_DIR = workdir / "run"  # its own process records: never touch a server `make server` started
    variables = start_prefect()
    os.environ.update(variables)
    try:
        # Prefect read its settings when it was imported: this process needs them updated in place too.
        with temporary_settings(
            {PREFECT_API_URL: variables["PREFECT_API_URL"], PREFECT_HOME: workdir / "prefect-home"}
        ):
            yield variables["PREFECT_API_URL"]
    finally:
        stop(["prefect"])


def months_on_disk(size: Size, workdir: Path, count: int) -> tuple[str, list[str]]:
    """`count` generated yellow months (reused across cases); returns the source template and the months."""
    folder = workdir / "source"
    months = MONTHS[:count]
    for month in months:
        if not (folder / f"yellow_tripdata_{month}.parquet").exists():
            write_month("yellow", Month.parse(month), size.rows, folder)
    return str(folder / "{service}_tripdata_{month}.parquet"), months


def quote_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, 1)

    @flow(name="bench-quote")
    def measure() -> list[Result]:
        uri = source.format(service="yellow", month=months[0])
        frame = normalize_table(read_trip_file(uri), "yellow", uri).to_pandas()
        return quote.measure_calls(frame)

    results = measure()
    for result in results:
        result.target, result.met = {
            "quote_collection": (">= 20x", result.ratio >= 20),
            "quote_dataframe": ("none: shows quote does not help here", None),
            "no_cache_dataframe": (">= 20x", result.ratio >= 20),
        }[result.name]
    return results


def cache_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, size.disk_io_months)
    cold_source = workdir / "cache-source"  # paths never cached before
    cold_source.mkdir()
    for month in months:
        shutil.copy(source.format(service="yellow", month=month), cold_source)
    template = str(cold_source / "{service}_tripdata_{month}.parquet")
    run = lambda: caching.cached_etl(months=months, source=template, output=str(workdir / "cache-out"))  # noqa: E731
    cold, cached = seconds(run), seconds(run)
    result = Result(
        "cache", f"flow seconds over {len(months)} months: cold run vs cached rerun", cold, cached, size.rows
    )
    result.target, result.met = "cached <= 5% of cold (>= 20x)", cached <= 0.05 * cold
    return [result]


def disk_io_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, size.disk_io_months)
    both = disk_io.compare_in_fresh_processes(months, source, str(workdir / "disk-io-out"))
    if both["memory"]["report"] != both["paths"]["report"]:
        raise AssertionError("disk_io variants disagree")
    memory, paths = both["memory"]["peak_rss_mb"], both["paths"]["peak_rss_mb"]
    result = Result(
        "disk_io", f"flow process peak RSS MB over {len(months)} months: results vs paths", memory, paths, size.rows
    )
    result.target, result.met = "paths <= 50% of in-memory (>= 2x)", paths <= 0.5 * memory
    return [result]


def serializer_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, 1)
    uri = source.format(service="yellow", month=months[0])
    frame = normalize_table(read_trip_file(uri), "yellow", uri).to_pandas().head(size.serializer_rows)
    table = {
        label: compression.measure_serializer(frame, serializer)
        for label, serializer in compression.SERIALIZERS.items()
    }
    result = compression.serializer_result(table, len(frame))
    smaller = table["parquet (zstd)"]["bytes"] <= table["compressed/pickle (lzma)"]["bytes"]
    result.target, result.met = ">= 50x faster and no larger", result.ratio >= 50 and smaller
    return [result]


def _seconds_per_month(summaries: list[dict]) -> float:
    """Steady state: time between the first and the last month finishing, per month after the first."""
    finished = sorted(s["finished_at"] for s in summaries)
    return (finished[-1] - finished[0]) / (len(finished) - 1)


def dask_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, size.dask_months)
    results = []
    for engine in ("pandas", "polars"):
        parameters = {"months": months, "source": source, "engine": engine}
        started = time.perf_counter()
        sequential = dask_runner.sequential_months(**parameters, output=str(workdir / "seq"))
        sequential_wall, started = time.perf_counter() - started, time.perf_counter()
        parallel = dask_runner.run(**parameters, output=str(workdir / "dask"))["months"]  # cluster start included
        parallel_wall = time.perf_counter() - started
        steady = Result(
            "dask" if engine == "pandas" else "dask_polars",
            f"seconds per month once the first is done, {engine}, {len(months)} months: sequential vs 2 workers",
            _seconds_per_month(sequential),
            _seconds_per_month(parallel),
            size.rows,
        )
        wall = Result(
            f"dask_wall_{engine}",
            f"wall seconds incl. cluster start, {engine}, {len(months)} months",
            sequential_wall,
            parallel_wall,
            size.rows,
        )
        if engine == "pandas":
            steady.target, steady.met = ">= 1.5x", steady.ratio >= 1.5
        results += [steady, wall]
    return results


def overhead_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, 1)
    uri, month = source.format(service="yellow", month=months[0]), Month.parse(months[0])
    zones = load_zone_table()
    plain = seconds(lambda: run_month(uri, "yellow", month, str(workdir / "plain"), zones, "polars"), repeat=2)
    with_prefect = seconds(lambda: taxi_etl(months=months, source=uri, output=str(workdir / "prefect")), repeat=2)
    result = Result(
        "overhead",
        "seconds for one month: taxi_etl flow vs the same functions without Prefect",
        with_prefect,
        plain,
        size.rows,
    )
    result.target, result.met = "flow <= 1.25x plain", result.ratio <= 1.25
    return [result]


CASES: list[tuple[str, Callable[[Size, Path], list[Result]]]] = [
    ("quote", quote_case),
    ("cache", cache_case),
    ("disk_io", disk_io_case),
    ("serializer", serializer_case),
    ("dask", dask_case),
    ("overhead", overhead_case),
]
