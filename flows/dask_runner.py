"""Lesson 6, the Dask task runner: months processed in parallel on a Dask cluster, local or existing.

What it does. `dask_months` maps `tasks.pipeline.month.etl_month` over the months with `.map()`, so each month is a
task on a Dask worker; `task_runner=DaskTaskRunner(...)` is chosen per run with `with_options`. With no address
it starts a `LocalCluster` of worker processes; with `address="tcp://..."` it uses an existing scheduler (`make
dask` starts one with two workers on 127.0.0.1). A last task runs a `dask.dataframe` aggregation on the same
cluster through `prefect_dask.get_dask_client`, reading exactly the files this run's months wrote (never other
months that happen to be under the same output folder).

When it helps. When one month's work is single-threaded (the pandas engine) and there are idle cores or machines:
months then run side by side (`dask` in `benchmarks/results.md`). When it does not: polars already uses every
core for one month, so on one machine Dask adds transfer and start-up cost for no parallelism to gain; and a
`LocalCluster` takes seconds to start, which short runs never win back.

What it costs, and the traps. Task inputs and results are pickled to and from workers: pass paths and small
summaries, never frames. Only `.submit()`/`.map()` go to Dask; a plain call runs in the flow process. Every
worker process talks to the Prefect API: without `PREFECT_API_URL`, each would start its own temporary server,
so this lesson uses worker processes only when an API URL is set, and threads otherwise.

Where it writes. `output`, else `output/lessons/dask/` (`settings.lesson_output_root`): never the lake.

What you see. Each run publishes the table artifact `lesson-dask` (per month: rows in, rows clean, seconds on its
worker) and logs it with the trips per pickup borough that dask.dataframe computed.

Run it: `python -m flows.dask_runner` (LocalCluster on the sample), or `make dask` then
`python -m flows.dask_runner --address tcp://127.0.0.1:<port>` (the port `make dask` printed).

Course page: `docs/lessons/dask.md` (`make docs` builds the site).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import dask.dataframe as dd
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect_dask import get_dask_client

from flows.runners import dask_task_runner
from tasks import settings
from tasks.lake import lake_snapshot
from tasks.observe.lesson_report import publish_lesson_table
from tasks.observe.metrics import current_run_rows, metered
from tasks.observe.metrics_publish import monitored
from tasks.pipeline.month import etl_month, run_month
from tasks.pipeline.plan import sample_plan
from tasks.pipeline.zones import load_zones

ARTIFACT_KEY = "lesson-dask"


@metered
@task(name="trips-per-borough", cache_policy=NO_CACHE)
def trips_per_borough(root: str, service: str, months: list[str]) -> dict[str, int]:
    """A dask.dataframe aggregation over the months' trips files, computed on the flow's own Dask cluster. The files
    are those the lake's Delta log names for each month now (`tasks.lake.lake_snapshot`), never a folder's glob,
    which would also read the files of replaced versions."""
    snapshot = lake_snapshot(root)
    paths = [f for m in snapshot if m.service == service and str(m.month) in months for f in m.files["trips"]]
    with get_dask_client():
        trips = dd.read_parquet(paths, columns=["pu_borough"], storage_options=settings.storage_options(paths[0]))
        counts = trips.groupby("pu_borough").size().compute()
    return {str(borough): int(n) for borough, n in counts.items()}


@monitored
@flow(name="lesson-dask-months")
def dask_months(
    service: str = "yellow",
    months: list[str] | None = None,
    source: str = settings.SAMPLE_SOURCE,
    output: str | None = None,
    engine: str = "pandas",
) -> dict:
    """Map the months over the flow's Dask task runner, then aggregate what they wrote with dask.dataframe."""
    started = time.perf_counter()
    root, zones = output or settings.lesson_output_root("dask"), load_zones()
    chosen, sources = zip(*sample_plan(service, months, source), strict=True)
    futures = etl_month.map(
        list(sources), unmapped(service), list(chosen), unmapped(root), unmapped(zones), unmapped(engine)
    )
    summaries = [asdict(summary) for summary in futures.result()]
    boroughs = trips_per_borough.submit(root, service, [summary["month"] for summary in summaries]).result()
    return {"months": summaries, "trips_per_borough": boroughs, "seconds": round(time.perf_counter() - started, 2)}


def publish_dask_lesson(result: dict, engine: str) -> None:
    """The lesson's artifact, on the run a user started (the deployment's flow, not its Dask subflow)."""
    summaries = result["months"]
    seconds = {row["month"]: row["wall_seconds"] for row in current_run_rows() if row["task"] == etl_month.name}
    publish_lesson_table(
        ARTIFACT_KEY,
        [
            {k: s[k] for k in ("month", "rows_in", "rows_clean")} | {"seconds": seconds.get(s["month"])}
            for s in summaries
        ],
        f"{len(summaries)} month(s), {engine} engine, mapped over Dask in {result['seconds']:.2f} s; "
        f"trips per pickup borough: {result['trips_per_borough']} (full size: `dask` in benchmarks/results.md)",
    )


def sequential_months(
    service: str = "yellow",
    months: list[str] | None = None,
    source: str = settings.SAMPLE_SOURCE,
    output: str | None = None,
    engine: str = "pandas",
) -> list[dict]:
    """The baseline: the same months, one after another, with the same function, in one process."""
    root, zones = output or settings.lesson_output_root("dask-sequential"), load_zones.fn()
    return [asdict(run_month(uri, service, m, root, zones, engine)) for m, uri in sample_plan(service, months, source)]


def run(address: str | None = None, n_workers: int = 2, **parameters) -> dict:
    """`dask_months` on a LocalCluster or an existing scheduler."""
    return dask_months.with_options(task_runner=dask_task_runner(address, n_workers))(**parameters)


@monitored
@flow(name="lesson-dask")
def dask_lesson(
    address: str | None = None,
    n_workers: int = 2,
    engine: str = "pandas",
    months: list[str] | None = None,
    source: str = settings.SAMPLE_SOURCE,
    output: str | None = None,
) -> dict:
    """The lesson as one deployable flow: `dask_months` as a subflow on the chosen Dask cluster."""
    result = run(address, n_workers, engine=engine, months=months, source=source, output=output)
    publish_dask_lesson(result, engine)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.dask_runner", description="Lesson: the Dask task runner")
    parser.add_argument("--address", help="tcp://host:port of an existing Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers")
    parser.add_argument("--engine", default="pandas", choices=("pandas", "polars"))
    args = parser.parse_args(argv)
    result = run(args.address, args.workers, engine=args.engine)
    for month in result["months"]:
        print(f"{month['month']}: {month['rows_in']:,} rows in, {month['rows_clean']:,} clean")
    print(f"trips per pickup borough (dask.dataframe): {result['trips_per_borough']}")


if __name__ == "__main__":
    main()
