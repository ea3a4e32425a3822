"""The year rows of issue 19: what Prefect costs over a year of months, and what a cached rerun of that year costs.

`overhead_year` runs the year through `taxi_etl` and through plain `run_month` at the same parallelism (as many
threads as the flow's runner runs months at once), interleaved in one process. `cache_year` is the `cache` row
over the year: each repeat copies the months to paths never cached before, runs `flows.caching.cached_etl` cold,
then again, served from the cache. "The year" is the last of the run's scale points (12 months; 2 in a quick run).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from benchmarks.harness import Size, months_on_disk
from flows import caching
from flows.etl import taxi_etl
from tasks import settings
from tasks.months import Month
from tasks.observe.measure import Result, interleaved_timings, timings
from tasks.pipeline.month import run_month
from tasks.pipeline.zones import load_zone_table

OVERHEAD_YEAR = 1.05  # taxi_etl's seconds over a year at most this many times plain run_month's
CACHED_TIMES = 20  # a cached rerun at most 1/20 (5%) of the cold run's seconds


def overhead_year_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, size.scale_points[-1])
    zones, threads = load_zone_table(), settings.month_threads()

    def plain() -> None:
        def one(month: str) -> None:
            uri = source.format(service="yellow", month=month)
            run_month(uri, "yellow", Month.parse(month), str(workdir / "year-plain"), zones, "polars")

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, months))

    samples = interleaved_timings(
        {"flow": lambda: taxi_etl(months=months, source=source, output=str(workdir / "year-prefect")), "plain": plain},
        size.repeats,
    )
    result = Result.from_repeats(
        "overhead_year",
        f"seconds for {len(months)} months: taxi_etl flow vs the same functions without Prefect in {threads} threads"
        " (a cost: lower is better)",
        samples["flow"],
        samples["plain"],
        size.rows * len(months),
        lesson="flows/etl.py",
        target=f"flow <= {OVERHEAD_YEAR:g}x plain",
    )
    result.met = result.ratio <= OVERHEAD_YEAR
    return [result]


def cache_year_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, size.scale_points[-1])
    cold, cached = [], []
    for repeat in range(size.repeats):
        fresh = workdir / f"cache-year-source-{repeat}"
        fresh.mkdir()
        for month in months:
            shutil.copy(source.format(service="yellow", month=month), fresh)
        template, output = str(fresh / "{service}_tripdata_{month}.parquet"), str(workdir / f"cache-year-out-{repeat}")
        run = partial(caching.cached_etl, months=months, source=template, output=output)
        cold += timings(run, 1)
        cached += timings(run, 1)
    result = Result.from_repeats(
        "cache_year",
        f"flow seconds over {len(months)} months: cold run vs cached rerun",
        cold,
        cached,
        size.rows * len(months),
        lesson="flows/caching.py",
        target=f"cached <= {1 / CACHED_TIMES:.0%} of cold (>= {CACHED_TIMES}x)",
    )
    result.met = result.ratio >= CACHED_TIMES
    return [result]
