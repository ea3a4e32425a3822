"""`taxi_etl` on an existing Dask cluster, as `make dask` starts one (`servers.start_dask`): how it scales from one
worker to two, and whether its scheduler's memory grows run after run.

- `dask_scaling`: the year's months through `taxi_etl` on a one-worker and on a two-worker cluster, both standing
  (their starts timed apart), one fresh flow process per run, the two alternating (1, 2, then 2, 1, ...) so that a
  busy machine's drift falls on both. Each worker is single-threaded in CPU too (`servers.SINGLE_THREADED`), so a
  second worker is a second core: on two cores, perfect scaling is 2x.
- `scheduler_growth`: consecutive `taxi_etl` runs of tiny months on one cluster, the scheduler process's RSS read
  from `/proc` after each (its process id is the one `servers` recorded). The first run costs the scheduler a
  one-time step (it deserializes what the first Prefect client sends, importing libraries), so growth is the slope
  over the runs after it.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cloudpickle
from distributed import Client, Scheduler
from prefect.settings import PREFECT_API_URL
from rich.console import Console

from benchmarks.harness import Size
from benchmarks.scale import CACHE_FROM_ROWS, generated_months
from data.generate import MonthFile, write_months
from servers import scheduler_pid, start_dask, stop
from tasks import settings
from tasks.months import Month
from tasks.observe.measure import Result, run_child, spread

LESSON = "flows/etl.py"
console = Console(stderr=True)  # a full run takes minutes: say what each measurement gave
SCALING = 1.8  # two workers' throughput at least this many times one worker's (90% scaling efficiency)
GROWTH_MIB_PER_RUN = 1.0  # the scheduler's RSS may grow at most this much per run after the first
TINY_ROWS = 3_000  # the scheduler_growth months: the flow's and the cluster's overhead is what is measured
# The functions run on the workers and the scheduler travel by value: those processes import the project as
# installed, which need not be this checkout.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _project_on_worker() -> dict:
    """Imported on each worker before any timing; what a worker's CPU pools are, for the row's details."""
    import polars

    import tasks.pipeline.month  # noqa: F401

    return {"polars threads": polars.thread_pool_size()}


@contextmanager
def cluster(workers: int, name: str) -> Iterator[tuple[str, Client, float]]:
    """`servers.start_dask` with `workers` workers under `name`, ready: (address, client, seconds it took)."""
    started = time.perf_counter()
    client = None
    try:
        address = start_dask(PREFECT_API_URL.value(), workers=workers, name=name)["TAXI_DASK_ADDRESS"]
        client = Client(address, timeout=120)
        client.wait_for_workers(workers, timeout=300)
        client.run(_project_on_worker)
        yield address, client, time.perf_counter() - started
    finally:
        if client is not None:
            client.close()
        stop([f"{name}-"])


def etl_seconds(source: str, months: list[str], output: Path, address: str) -> float:
    """Wall seconds of one `taxi_etl` run in a fresh process (imports excluded) on the cluster at `address`."""
    try:
        out = run_child(
            *("benchmarks.scale_runs", "etl", "--source", source, "--months", ",".join(months)),
            *("--output", str(output), "--runner", "dask", "--dask-address", address),
        )
    finally:
        shutil.rmtree(output, ignore_errors=True)
    return out["seconds"]


def dask_scaling_case(size: Size, workdir: Path) -> list[Result]:
    count = size.scale_points[-1]
    folder = settings.CACHE_DIR / "scale" if size.rows >= CACHE_FROM_ROWS else workdir / "scale-source"
    source, months = generated_months(size.rows, count, folder / f"yellow-{size.rows}-rows")
    seconds: dict[int, list[float]] = {1: [], 2: []}
    with cluster(1, "dask-one") as one, cluster(2, "dask-two") as two:
        clusters = {1: one, 2: two}
        for repeat in range(size.repeats):
            for workers in (1, 2) if repeat % 2 == 0 else (2, 1):
                output = workdir / f"dask-scaling-{workers}-{repeat}"
                seconds[workers].append(etl_seconds(source, months, output, clusters[workers][0]))
                console.log(f"  dask_scaling: {workers} worker(s), round {repeat + 1}: {seconds[workers][-1]:.3g} s")
        threads = two[1].run(_project_on_worker)
    details = [
        {
            "workers": workers,
            "wall s": spread(seconds[workers]),
            "months/s": spread([count / run for run in seconds[workers]]),
            "cluster start s (apart)": spread([clusters[workers][2]]),
        }
        for workers in (1, 2)
    ]
    details[1]["polars threads per worker"] = sorted({info["polars threads"] for info in threads.values()})
    result = Result.from_repeats(
        "dask_scaling",
        f"wall seconds per month over {count} months of {size.rows:,} rows, taxi_etl in a fresh flow process on an"
        " existing Dask cluster (`servers.start_dask`, single-threaded workers, MONTH=1 each): 1 worker vs 2,"
        " cluster starts apart",
        [run / count for run in seconds[1]],
        [run / count for run in seconds[2]],
        count * size.rows,
        unit="s/month",
        lesson=LESSON,
        target=f">= {SCALING:g}x",
        details=details,
    )
    result.met = result.ratio >= SCALING
    return [result]


def rss_mib(pid: int) -> float:
    """The resident memory of process `pid` now (`VmRSS`), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:"))


def _scheduler_state(dask_scheduler: Scheduler) -> dict:
    """What the scheduler holds after the runs (`run_on_scheduler` passes it by this parameter's name)."""
    return {
        "tasks": len(dask_scheduler.tasks),
        "clients": len(dask_scheduler.clients),
        "plugins": sorted(dask_scheduler.plugins),
        "prefect imported": "prefect" in sys.modules,
    }


def scheduler_growth_case(size: Size, workdir: Path) -> list[Result]:
    from flows.etl import taxi_etl_on

    months = ["2025-01", "2025-02"]
    folder = workdir / "tiny-source"
    write_months([MonthFile("yellow", Month.parse(month), TINY_ROWS, folder) for month in months])
    source = str(folder / "{service}_tripdata_{month}.parquet")
    with cluster(2, "dask-growth") as (address, client, _):
        pid = scheduler_pid("dask-growth")
        rss = [rss_mib(pid)]
        for run in range(size.flow_runs):
            output = workdir / f"growth-{run}"
            taxi_etl_on("dask", address)(service="yellow", months=months, source=source, output=str(output))
            shutil.rmtree(output, ignore_errors=True)
            rss.append(rss_mib(pid))
        state = client.run_on_scheduler(_scheduler_state)
    after = rss[2:]  # after the second run onwards: the first run's one-time step left out
    slope = statistics.linear_regression(range(len(after)), after).slope
    result = Result.from_repeats(
        "scheduler_growth",
        f"scheduler RSS (MiB) of an existing Dask cluster over {size.flow_runs} consecutive taxi_etl runs of"
        f" {len(months)} months of {TINY_ROWS:,} rows: after runs 2-4 vs after the last 3",
        after[:3],
        after[-3:],
        len(months) * TINY_ROWS,
        unit="MiB",
        lesson=LESSON,
        target=f"<= {GROWTH_MIB_PER_RUN:g} MiB per run (slope from run 2 on)",
        note=f"the scheduler's RSS grew {slope:+.2f} MiB per run over runs 2-{size.flow_runs}; the first run added"
        f" {rss[1] - rss[0]:.0f} MiB once ({rss[0]:.0f} -> {rss[1]:.0f} MiB)",
        details=[
            {
                "MiB per run (slope from run 2 on)": round(slope, 3),
                "RSS MiB before any run": round(rss[0], 1),
                "RSS MiB after run 1": round(rss[1], 1),
                "RSS MiB after each run": [round(value, 1) for value in rss[1:]],
                "scheduler after the runs": state,
            }
        ],
    )
    result.met = slope <= GROWTH_MIB_PER_RUN
    return [result]
