"""The scale section: 1 to 12 generated months of 3,000,000 rows through the same month plan, several ways.

- bare polars in 2 processes: `run_month` month after month without a Prefect run (the floor);
- `taxi_etl` on threads (its default runner: two months at a time in the flow process), and one month at a time;
- `taxi_etl` on an existing two-worker Dask cluster and, over the year, on a one-worker one (`servers.start_dask`,
  each started once, their starts timed apart; the workers are restarted before each run, so each run's worker
  peaks are that run's own).

Every measurement is a fresh process (`benchmarks.scale_runs`) reporting its wall seconds and peak RSS; a Dask
run adds each worker's, read through the client. The rows answer issues 8's and 19's targets: `year_wall`,
`year_linearity`, `year_peak_rss`, `month_peak_rss`, `month_peak_rss_growth`, `dask_year`, `overhead_year` and
`dask_scaling`; the curve of every variant over the month counts is the `year_wall` row's details, which
`benchmarks/scale_chart.py` draws. `scheduler_growth` runs on the two-worker cluster before the section's runs
(one cluster start for all of them).

The months are generated once (`benchmarks.harness.generated_months`) and kept under `data/cache/scale/` when
large. The points between the first and the last count are measured once: no row rests on them, and the section
must fit a `make bench`.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from distributed import Client
from prefect.settings import PREFECT_API_URL
from rich.console import Console

from benchmarks.dask_cluster import scheduler_growth
from benchmarks.harness import Size, generated_months
from benchmarks.scale_rows import (
    BARE_2,
    BIG_MONTH,
    BIG_MONTH_FACTOR,
    DASK,
    DASK_ONE,
    PANDAS,
    SEQUENTIAL,
    WORKERS,
    Job,
    Run,
    planned,
    scale_results,
)
from servers import start_dask, stop
from tasks.observe.measure import Result, map_in_context, peak_rss_mib, run_child

console = Console(stderr=True)  # a full section runs for minutes: say what each measurement gave


def _worker_threads() -> dict:
    """What a worker's CPU pool is, for the details (its setup, `flows.runners.dask_setup`, ran as it started)."""
    import polars

    return {"polars threads": polars.thread_pool_size()}


@dataclass
class Cluster:
    """An existing cluster a Dask variant runs on: a scheduler and its `dask worker` processes."""

    name: str
    address: str
    client: Client
    start_seconds: float
    restart_seconds: list[float]

    def fresh_workers(self) -> None:
        """New worker processes (their nannies restart them, each readied by its preload): peaks start from zero."""
        started = time.perf_counter()
        self.client.restart()
        self.restart_seconds.append(time.perf_counter() - started)

    def worker_peaks(self) -> dict[str, float]:
        peaks = self.client.run(peak_rss_mib)
        return {f"worker {index}": peaks[address] for index, address in enumerate(sorted(peaks), start=1)}


@contextmanager
def existing_cluster(workers: int, name: str) -> Iterator[Cluster]:
    """`servers.start_dask` (as `make dask`) with `workers` workers under `name`, reporting to this run's Prefect
    server; stopped by its process ids."""
    started = time.perf_counter()
    client = None
    try:
        address = start_dask(PREFECT_API_URL.value(), workers=workers, name=name)["TAXI_DASK_ADDRESS"]
        client = Client(address, timeout=120)
        client.wait_for_workers(workers, timeout=300)
        yield Cluster(name, address, client, time.perf_counter() - started, [])
    finally:
        if client is not None:
            client.close()
        stop([f"{name}-"])


class Measure:
    """Runs the jobs: each in fresh processes, each writing into its own output folder, removed afterwards."""

    def __init__(self, year: tuple[str, list[str]], big: tuple[str, list[str]], workdir: Path, clusters: dict):
        self.year, self.big, self.workdir, self.clusters = year, big, workdir, clusters
        self.fresh_workers = True  # restart a cluster's workers before each run on it, so their peaks are its own

    def __call__(self, job: Job) -> Run:
        variant = re.sub(r"\W+", "-", job.variant).strip("-")
        output = self.workdir / f"scale-out-{variant}-{job.months}-{job.repeat}"
        try:
            run = self._run(job, str(output))
        finally:
            shutil.rmtree(output, ignore_errors=True)
        peaks = ", ".join(f"{name} {peak:.0f}" for name, peak in run.peaks.items())
        console.log(
            f"  scale: {job.variant}, {job.months} month(s), round {job.repeat + 1}: {run.seconds:.3g} s; {peaks} MiB"
        )
        return run

    def _run(self, job: Job, output: str) -> Run:
        source, months = self.big if job.variant == BIG_MONTH else self.year
        months = months[: job.months]
        if job.variant == BARE_2:
            parts = [p for p in (months[0::2], months[1::2]) if p]
            barrier = Path(output) / "barrier"
            with ThreadPoolExecutor(len(parts)) as pool:
                outs = list(
                    map_in_context(
                        pool,
                        lambda part: run_child(
                            *("benchmarks.scale_runs", "bare", "--source", source, "--months", ",".join(part)),
                            *("--output", output, "--barrier", str(barrier), "--parties", str(len(parts))),
                        ),
                        parts,
                    )
                )
            seconds = max(out["finished"] for out in outs) - min(out["started"] for out in outs)
            peaks = {f"process {index}": out["peak_rss_mib"] for index, out in enumerate(outs, start=1)}
            return Run(job, seconds, sum(out["rows"] for out in outs), peaks)
        options = ["--source", source, "--months", ",".join(months), "--output", output]
        cluster = self.clusters.get(job.variant)
        if cluster and self.fresh_workers:
            cluster.fresh_workers()
            options += ["--runner", "dask", "--dask-address", cluster.address]
        if job.variant == SEQUENTIAL:
            options += ["--month-threads", "1"]
        if job.variant == PANDAS:
            options += ["--engine", "pandas"]
        out = run_child("benchmarks.scale_runs", "etl", *options)
        peaks = {"flow": out["peak_rss_mib"], **(cluster.worker_peaks() if cluster else {})}
        return Run(job, out["seconds"], out["rows"], peaks)


def scale_case(size: Size, workdir: Path) -> list[Result]:
    """`scheduler_growth` on the two-worker cluster, then every planned job, one at a time (in a quick run the
    jobs off the clusters run beside the others), and the rows built from them."""
    year = generated_months(size.rows, size.scale_points[-1], workdir)
    big = generated_months(size.rows * BIG_MONTH_FACTOR, 1, workdir)
    jobs = planned(size.scale_points, size.repeats)
    with existing_cluster(WORKERS, "dask-two") as two, existing_cluster(1, "dask-one") as one:
        growth = scheduler_growth(size, workdir, two.name, two.address, two.client)
        measure = Measure(year, big, workdir, {DASK: two, DASK_ONE: one})
        measure.fresh_workers = size.fresh_workers
        beside = [job for job in jobs if job.variant not in (DASK, DASK_ONE)] if size.timed_side_by_side else []
        with ThreadPoolExecutor(max(size.concurrent_processes - 1, 1)) as pool:
            others = map_in_context(pool, measure, beside)  # started now, beside the jobs measured in turn
            runs = [measure(job) for job in jobs if job not in beside] + list(others)
        started = {
            "cluster start s (apart)": [two.start_seconds],
            "1-worker cluster start s (apart)": [one.start_seconds],
        }
        if restarts := [*two.restart_seconds, *one.restart_seconds]:
            started["fresh workers s (before each Dask run, apart)"] = restarts
        threads = two.client.run(_worker_threads)
    for run in runs:
        expected = run.job.months * (size.rows * BIG_MONTH_FACTOR if run.job.variant == BIG_MONTH else size.rows)
        if run.rows != expected:
            raise AssertionError(f"{run.job}: read {run.rows:,} rows, expected {expected:,}")
    results = scale_results(runs, size.rows, size.scale_points, started)
    scaling = next(result for result in results if result.name == "dask_scaling")
    scaling.details[-1]["polars threads per worker"] = sorted({info["polars threads"] for info in threads.values()})
    return [*results, growth]
