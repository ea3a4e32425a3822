"""`taxi-mart`: the daily pickup-zone mart over the lake, on a Dask cluster or with polars lazy, and its chart.

The mart (`tasks/mart.py`, where every measure is defined) has one row per service, pickup day and pickup zone:
trips, revenue, mean tip fraction, mean speed and quarantine rate. It is published at
`<lake>/marts/daily_pickup_zone.parquet` (`-<year>` added when one year is asked for).

Two engines give the same table (`tests/test_mart.py` holds them to it):

- `engine="dask"`: one task on a `DaskTaskRunner` opens `prefect_dask.get_dask_client()` and runs dask.dataframe
  over one snapshot of the lake's Delta tables (the files each month's log names), so the reading and grouping
  run on the cluster's workers. With no `address` the runner starts a `LocalCluster`; with `address="tcp://..."`
  it joins an existing scheduler (`make dask`, or a cluster on Kubernetes), whose workers must see the lake at
  the same path or S3 prefix. The task holds one worker thread while the dataframe runs, so a cluster needs at
  least two.
- `engine="polars"`: one task in the flow's process, polars lazy over the same files: no cluster to start, and
  every core of one machine. For a lake that fits one machine's disk this is the quicker of the two; Dask is for a
  lake spread over more data than one machine reads in time.

Run it:

    python -m flows.mart                      # the sample lake (output/sample), on a LocalCluster
    python -m flows.mart --engine polars --lake output --year 2024
    python -m flows.mart --chart              # also redraw reports/mart/daily-trips-by-borough.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner, get_dask_client

from flows.runners import dask_task_runner
from tasks import settings
from tasks.lake import lake_snapshot
from tasks.mart import EmptyLakeError, dask_mart, mart_path, polars_mart, read_mart, write_mart
from tasks.pipeline.month import run_month
from tasks.pipeline.plan import sample_plan
from tasks.pipeline.zones import load_zones

Engine = Literal["dask", "polars"]
SERVICE_COLORS = {"yellow": "goldenrod", "green": "seagreen"}


def publish(table: pa.Table, destination: str, engine: str) -> dict:
    """Write the mart and return a small summary of it: what crosses task and process boundaries is this."""
    write_mart(table, destination)
    dates = table.column("pickup_date")
    return {
        "engine": engine,
        "mart": destination,
        "cells": table.num_rows,
        "trips": int(pc.sum(table.column("trips")).as_py() or 0),
        "quarantined": int(pc.sum(table.column("quarantined")).as_py() or 0),
        "first_day": str(pc.min(dates).as_py()),
        "last_day": str(pc.max(dates).as_py()),
    }


@task(name="mart-dask", cache_policy=NO_CACHE)
def mart_on_dask(root: str, year: int | None, destination: str) -> dict:
    """Compute the mart with dask.dataframe on this task's own cluster, publish it, return its summary."""
    with get_dask_client():
        table = dask_mart(root, year)
    return publish(table, destination, "dask")


@task(name="mart-polars", cache_policy=NO_CACHE)
def mart_with_polars(root: str, year: int | None, destination: str) -> dict:
    """Compute the mart with polars lazy in this process, publish it, return its summary."""
    return publish(polars_mart(root, year), destination, "polars")


@flow(name="taxi-mart-dask")
def mart_on_cluster(root: str, year: int | None, destination: str) -> dict:
    """The Dask half: run with a `DaskTaskRunner` (see `taxi_mart`), so `.submit()` puts the task on the cluster."""
    return mart_on_dask.submit(root, year, destination).result()


def mart_task_runner(address: str | None, n_workers: int, processes: bool | None) -> DaskTaskRunner:
    """The lesson's runner (an existing scheduler, or a LocalCluster), unless worker processes are chosen."""
    if address or processes is None:
        return dask_task_runner(address, n_workers)
    cluster = {"n_workers": n_workers, "threads_per_worker": 1, "processes": processes, "dashboard_address": None}
    return DaskTaskRunner(cluster_kwargs=cluster)


@task(name="mart-chart", cache_policy=NO_CACHE)
def chart_task(mart_uri: str, path: str, label: str) -> str:
    """Redraw the chart from the published mart; returns the chart's path."""
    return str(draw_chart(read_mart(mart_uri), Path(path), label))


@flow(name="taxi-mart")
def taxi_mart(
    lake: str | None = None,
    engine: Engine = "dask",
    address: str | None = None,
    n_workers: int = settings.MART_DASK_WORKERS,
    year: int | None = None,
    chart: str | None = None,
    processes: bool | None = None,
) -> dict:
    """Build the daily pickup-zone mart of `lake` (default `$TAXI_OUTPUT_ROOT`, else `./output`), optionally for
    one `year`, with Dask (a LocalCluster of `n_workers`, or the scheduler at `address`) or polars; optionally
    redraw its chart at `chart`. Publishes a `taxi-mart` artifact with the summary.

    `processes` chooses a LocalCluster's workers: processes (each imports Prefect and reports to the API, so they
    need `PREFECT_API_URL`) or threads of this process (quick to start; the dataframe still runs in parallel,
    as pyarrow and pandas release the GIL). Default: processes when an API URL is set, as `flows/dask_runner.py`.
    """
    root = lake or settings.output_root()
    destination = mart_path(root, settings.MART_NAME, year)
    if engine == "dask":
        on_cluster = mart_on_cluster.with_options(task_runner=mart_task_runner(address, n_workers, processes))
        summary = on_cluster(root, year, destination)
    elif engine == "polars":
        summary = mart_with_polars(root, year, destination)
    else:
        raise ValueError(f"engine must be 'dask' or 'polars', not {engine!r}")
    if chart:
        summary["chart"] = chart_task(destination, chart, root)
    create_markdown_artifact(
        key="taxi-mart",
        markdown="\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in summary.items())]),
        description="taxi-mart: the daily pickup-zone mart",
    )
    get_run_logger().info("mart of %s: %s cells, %s trips", root, f"{summary['cells']:,}", f"{summary['trips']:,}")
    return summary


# ---- the chart ---------------------------------------------------------------------------------------------


def draw_chart(mart: pa.Table, path: Path, label: str) -> Path:
    """Two panels from the mart alone: trips per day by pickup borough (every service), and the share of each
    service's rows quarantined per day. Needs matplotlib (the `bench` extra, which `make setup` installs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = pl.from_arrow(mart)
    by_borough = (
        cells.filter(pl.col("pu_borough").is_not_null())
        .pivot(on="pu_borough", index="pickup_date", values="trips", aggregate_function="sum", sort_columns=True)
        .sort("pickup_date")
        .fill_null(0)
    )
    rates = (
        cells.group_by("service", "pickup_date")
        .agg(rate=pl.col("quarantined").sum() / (pl.col("trips") + pl.col("quarantined")).sum())
        .sort("service", "pickup_date")
    )
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True, height_ratios=(3, 1.4))
    boroughs = by_borough.columns[1:]
    top.stackplot(by_borough["pickup_date"], *(by_borough[b] for b in boroughs), labels=boroughs, alpha=0.85)
    top.set_ylabel("trips per day")
    top.set_title(f"Daily trips by pickup borough, and quarantine rate: {label}")
    top.legend(loc="upper left", ncols=len(boroughs), fontsize="small")
    for service, rows in rates.group_by("service", maintain_order=True):
        bottom.plot(rows["pickup_date"], rows["rate"] * 100, label=service[0], color=SERVICE_COLORS.get(service[0]))
    bottom.set_ylabel("quarantined %")
    bottom.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# ---- command line ------------------------------------------------------------------------------------------


def build_sample_lake(root: str) -> None:
    """The lake `python -m flows.etl` writes for the committed sample, written here directly (a second)."""
    zones = load_zones.fn()
    for service in settings.SERVICES:
        for month, source in sample_plan(service, None):
            run_month(source, service, month, root, zones, "polars")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.mart",
        description="Build the daily pickup-zone mart (trips, revenue, tips, speed, quarantine rate) of a lake.",
    )
    parser.add_argument(
        "--lake",
        default=settings.SAMPLE_OUTPUT_ROOT,
        help="lake root, a folder or s3:// prefix (default: the sample's lake, output/sample, built if missing)",
    )
    parser.add_argument("--engine", default="dask", choices=("dask", "polars"))
    parser.add_argument("--address", help="tcp://host:port of an existing Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=settings.MART_DASK_WORKERS, help="LocalCluster workers")
    parser.add_argument("--year", type=int, help="only this year's months (default: every month in the lake)")
    parser.add_argument(
        "--chart",
        nargs="?",
        const=str(settings.MART_CHART),
        help=f"also draw the chart (default path: {settings.MART_CHART.relative_to(settings.PROJECT_ROOT)})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    label = args.lake
    if args.lake == settings.SAMPLE_OUTPUT_ROOT:
        label = "the committed synthetic sample"
        if not lake_snapshot(args.lake):
            print(f"no lake at {args.lake}: building it from the committed sample")
            build_sample_lake(args.lake)
    try:
        summary = taxi_mart(args.lake, args.engine, args.address, args.workers, args.year, None)
    except EmptyLakeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.chart:
        summary["chart"] = str(draw_chart(read_mart(summary["mart"]), Path(args.chart), label))
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
