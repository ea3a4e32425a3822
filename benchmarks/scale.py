"""The scale section: 1 to 12 generated months of 3,000,000 rows through the same month plan, four ways.

- bare polars, 1 and 2 processes: `run_month` month after month without a Prefect run (the floor);
- `taxi_etl` on threads (its default runner: two months at a time in the flow process);
- `taxi_etl` on an existing two-worker Dask cluster (`servers.start_dask`, started once, its start timed apart;
  its workers are restarted before each run, so each run's worker peaks are that run's own).

Every measurement is a fresh process (`benchmarks.scale_runs`) reporting its wall seconds and peak RSS; a Dask
run adds each worker's, read through the client. The rows answer issues 8's and 19's targets: `year_wall`,
`year_linearity`, `year_peak_rss`, `month_peak_rss`, `month_peak_rss_growth` and `dask_year`; the curve of every
variant over the month counts is the `year_wall` row's details, which `benchmarks/scale_chart.py` draws.

The months are generated once (`data.generate`'s year machinery) and kept under `data/cache/scale/` when large.
The points between the first and the last count are measured once, and so is bare polars in one process: no row
rests on them, and the section must fit a `make bench`.
"""

from __future__ import annotations

import importlib
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

from benchmarks.harness import Size
from benchmarks.scale_rows import (
    BARE_1,
    BARE_2,
    BIG_MONTH,
    BIG_MONTH_FACTOR,
    DASK,
    PANDAS,
    SEQUENTIAL,
    WORKERS,
    Job,
    Run,
    planned,
    scale_results,
)
from data.generate import MonthFile, requested_months, write_months
from servers import start_dask, stop
from tasks import settings
from tasks.observe.measure import Result, map_in_context, peak_rss_mib, run_child

YEAR = 2024
console = Console(stderr=True)  # a full section runs for minutes: say what each measurement gave
CACHE_FROM_ROWS = 1_000_000  # months this large take seconds each to generate: keep them between runs


def generated_months(rows: int, count: int, folder: Path) -> tuple[str, list[str]]:
    """`count` months of `rows` generated yellow trips of `YEAR` (kept if present); (source template, months)."""
    months = requested_months([YEAR], [])[:count]
    write_months([MonthFile("yellow", month, rows, folder) for month in months])
    return str(folder / "{service}_tripdata_{month}.parquet"), [str(month) for month in months]


def _import_project() -> None:
    importlib.import_module("tasks.pipeline.month")


@dataclass
class Cluster:
    """The existing cluster the Dask variant runs on: a scheduler and two `dask worker` processes."""

    address: str
    client: Client
    start_seconds: float
    restart_seconds: list[float]

    def fresh_workers(self) -> None:
        """New worker processes (their nannies restart them), the project imported: peaks start from zero."""
        started = time.perf_counter()
        self.client.restart()
        self.client.run(_import_project)
        self.restart_seconds.append(time.perf_counter() - started)

    def worker_peaks(self) -> dict[str, float]:
        peaks = self.client.run(peak_rss_mib)
        return {f"worker {index}": peaks[address] for index, address in enumerate(sorted(peaks), start=1)}


@contextmanager
def existing_cluster() -> Iterator[Cluster]:
    """`servers.start_dask` (as `make dask`), reporting to this run's Prefect server; stopped by its process ids."""
    started = time.perf_counter()
    address = start_dask(PREFECT_API_URL.value(), workers=WORKERS)["TAXI_DASK_ADDRESS"]
    client = None
    try:
        client = Client(address, timeout=120)
        client.wait_for_workers(WORKERS, timeout=300)
        client.run(_import_project)
        yield Cluster(address, client, time.perf_counter() - started, [])
    finally:
        if client is not None:
            client.close()
        stop(["dask"])


class Measure:
    """Runs the jobs: each in fresh processes, each writing into its own output folder, removed afterwards."""

    def __init__(self, year: tuple[str, list[str]], big: tuple[str, list[str]], workdir: Path, cluster: Cluster):
        self.year, self.big, self.workdir, self.cluster = year, big, workdir, cluster

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
        if job.variant in (BARE_1, BARE_2):
            parts = [months] if job.variant == BARE_1 else [p for p in (months[0::2], months[1::2]) if p]
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
        if job.variant == DASK:
            self.cluster.fresh_workers()
            options += ["--runner", "dask", "--dask-address", self.cluster.address]
        if job.variant == SEQUENTIAL:
            options += ["--month-threads", "1"]
        if job.variant == PANDAS:
            options += ["--engine", "pandas"]
        out = run_child("benchmarks.scale_runs", "etl", *options)
        peaks = {"flow": out["peak_rss_mib"], **(self.cluster.worker_peaks() if job.variant == DASK else {})}
        return Run(job, out["seconds"], out["rows"], peaks)


def scale_case(size: Size, workdir: Path) -> list[Result]:
    """Measure every planned job (side by side in quick runs, one at a time in full ones) and build the rows."""
    folder = settings.CACHE_DIR / "scale" if size.rows >= CACHE_FROM_ROWS else workdir / "scale-source"
    year = generated_months(size.rows, size.scale_points[-1], folder / f"yellow-{size.rows}-rows")
    big_rows = size.rows * BIG_MONTH_FACTOR
    big = generated_months(big_rows, 1, folder / f"yellow-{big_rows}-rows")
    jobs = planned(size.scale_points, size.repeats)
    with existing_cluster() as cluster:
        measure = Measure(year, big, workdir, cluster)
        if size.concurrent_processes > 1:  # Dask jobs share the cluster: they run in turn, the others beside them
            with ThreadPoolExecutor(size.concurrent_processes - 1) as pool:
                others = map_in_context(pool, measure, [job for job in jobs if job.variant != DASK])
                runs = [measure(job) for job in jobs if job.variant == DASK] + list(others)
        else:
            runs = [measure(job) for job in jobs]
        started = {
            "cluster start s (apart)": [cluster.start_seconds],
            "fresh workers s (before each Dask run, apart)": list(cluster.restart_seconds),
        }
    for run in runs:
        expected = run.job.months * (big_rows if run.job.variant == BIG_MONTH else size.rows)
        if run.rows != expected:
            raise AssertionError(f"{run.job}: read {run.rows:,} rows, expected {expected:,}")
    return scale_results(runs, size.rows, size.scale_points, started)
