"""The Dask lesson's benchmark: wall-clock throughput over all months, with the cluster's start timed apart.

Each repeat runs the months one after another in this process (the baseline), then starts a fresh two-worker
`LocalCluster` (timed: workers up and readied by `flows.runners.dask_setup`) and runs the lesson's flow on it through
its address. A run's time is from the call until its last month finished (`MonthSummary.finished_at`), so
the flow's final dask.dataframe aggregation, which the baseline does not do, is left out of both. A quick run
starts one cluster for all its repeats (`Size.cluster_per_repeat`): each start is two fresh worker processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from distributed import Client, LocalCluster

from benchmarks.harness import Size, months_on_disk
from flows import dask_runner
from flows.runners import WORKER_SETUP
from tasks.observe.measure import Result, spread

ENGINES = ("pandas", "polars")
WORKERS = 2


def until_last_month(run: Callable[[], list[dict]]) -> float:
    """Seconds from calling `run` until the last of the months it returns had finished."""
    started = time.time()  # wall clock, as `finished_at` is (it is set in the worker processes)
    return max(summary["finished_at"] for summary in run()) - started


def months_on_dask(address: str, **parameters: object) -> list[dict]:
    """The lesson's flow on an existing cluster; the summaries of its months."""
    return dask_runner.run(address, **parameters)["months"]


def start_cluster() -> tuple[LocalCluster, Client]:
    """Two single-threaded worker processes, each readied as it starts as the lesson's own LocalCluster's are
    (`flows.runners.dask_setup`: the pipeline imported, Prefect's collections loaded)."""
    cluster = LocalCluster(
        n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None, preload=[WORKER_SETUP]
    )
    return cluster, Client(cluster)


def dask_case(size: Size, workdir: Path) -> list[Result]:
    source, months = months_on_disk(size, workdir, size.dask_months)
    sequential: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    parallel: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    cluster_start: list[float] = []
    seq, on_dask = str(workdir / "sequential"), str(workdir / "dask")
    cluster = client = None
    try:
        for _ in range(size.repeats):
            for engine in ENGINES:
                run = partial(dask_runner.sequential_months, months=months, source=source, engine=engine, output=seq)
                sequential[engine].append(until_last_month(run))
            if cluster is None or size.cluster_per_repeat:
                if cluster is not None:
                    client.close()
                    cluster.close()
                started = time.perf_counter()
                cluster, client = start_cluster()
                cluster_start.append(time.perf_counter() - started)
            for engine in ENGINES:
                address = cluster.scheduler_address
                run = partial(months_on_dask, address, months=months, source=source, engine=engine, output=on_dask)
                parallel[engine].append(until_last_month(run))
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
    starts = cluster_start * (size.repeats // len(cluster_start))  # one start per repeat, or the one start each time
    count, results = len(months), []
    throughput = [  # the same runs as months per second, with the cluster start that the rows leave out
        {
            "engine": engine,
            "sequential months/s": spread([count / seconds for seconds in sequential[engine]]),
            "Dask months/s": spread([count / seconds for seconds in parallel[engine]]),
            "cluster start s (apart)": spread(cluster_start),
        }
        for engine in ENGINES
    ]
    for engine in ENGINES:
        per_month = Result.from_repeats(
            "dask" if engine == "pandas" else "dask_polars",
            f"wall seconds per month over all {count} months (1 / throughput), {engine}: sequential vs"
            f" {WORKERS} Dask workers, cluster start excluded",
            [seconds / count for seconds in sequential[engine]],
            [seconds / count for seconds in parallel[engine]],
            size.rows,
            unit="s/month",
            lesson="flows/dask_runner.py",
            details=throughput if engine == ENGINES[0] else [],
        )
        if engine == "pandas":
            per_month.target, per_month.met = ">= 1.5x", per_month.ratio >= 1.5
        with_start = Result.from_repeats(
            f"dask_wall_{engine}",
            f"wall seconds for all {count} months, {engine}: sequential vs cluster start + {WORKERS} Dask workers",
            sequential[engine],
            [start + run for start, run in zip(starts, parallel[engine], strict=True)],
            size.rows,
            lesson="flows/dask_runner.py",
        )
        results += [per_month, with_start]
    return results
