"""`cache_year`, a year row of issue 19: what a cached rerun of a year of months costs against its cold run.

It is the `cache` row over the year: each repeat links the months under paths never cached before (a source's cache
key holds its URI, so a new path is a cold month), runs `flows.caching.cached_etl` cold, then again, served from
the cache. "The year" is the last of the run's scale points (12 months; 2 in a quick run). The other year rows
(`overhead_year` among them) share the scale section's runs (`benchmarks/scale_rows.py`).
"""

from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

from benchmarks.harness import Size, months_on_disk
from flows import caching
from tasks.observe.measure import Result, timings

CACHED_TIMES = 20  # a cached rerun at most 1/20 (5%) of the cold run's seconds


def fresh_paths(source: str, months: list[str], folder: Path) -> str:
    """The months under `folder`, hard-linked (copied where links are refused): the same bytes at paths no cache
    key has seen. Returns the new source template."""
    folder.mkdir()
    for month in months:
        original = Path(source.format(service="yellow", month=month))
        try:
            os.link(original, folder / original.name)
        except OSError:
            shutil.copy(original, folder)
    return str(folder / "{service}_tripdata_{month}.parquet")


def cache_year_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, size.scale_points[-1])
    cold, cached = [], []
    for repeat in range(size.repeats):
        template = fresh_paths(source, months, workdir / f"cache-year-source-{repeat}")
        run = partial(caching.cached_etl, months=months, source=template, output=str(workdir / f"cache-year-{repeat}"))
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
