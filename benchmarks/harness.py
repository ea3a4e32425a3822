"""What every benchmark case shares: the sizes of a run, the Prefect server, and the generated months."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

from data.generate import MonthFile, requested_months, write_months
from servers import start_prefect, stop
from tasks import settings
from tasks.pipeline.extract import read_trip_file
from tasks.schema import normalize_table

YEAR = 2024  # the generated year every case reads its months from
CACHE_FROM_ROWS = 1_000_000  # months this large take seconds each to generate: keep them between runs


@dataclass
class Size:
    """How much data each case runs on, and how many times each variant is measured."""

    rows: int
    disk_io_months: int
    dask_months: int
    serializer_rows: int
    repeats: int = 3
    concurrent_processes: int = 1  # memory-only measurements (fresh processes) that may run side by side
    timed_side_by_side: bool = False  # wall-time measurements may share the machine too (quick: figures mean little)
    cluster_per_repeat: bool = True  # the Dask lesson's LocalCluster started anew for each repeat (its start timed)
    fresh_workers: bool = True  # the scale section's Dask workers restarted before each run (each peak its own)
    scale_points: tuple[int, ...] = (1, 4, 12)  # month counts of the scale section; the last one is "the year"
    monitoring_processes: int | None = 2  # fresh processes per variant of `monitoring_overhead` (None: repeats)
    flow_runs: int = 20  # consecutive taxi_etl runs on one Dask cluster whose scheduler's memory is followed

    @classmethod
    def full(cls) -> Size:
        return cls(rows=3_000_000, disk_io_months=3, dask_months=4, serializer_rows=100_000, concurrent_processes=2)

    @classmethod
    def quick(cls) -> Size:
        """Tiny months, and as few fresh processes as the rows' three samples allow: a quick run checks the
        machinery (each process imports Prefect, seconds of CPU on a small machine), its figures mean little. So
        one Dask lesson cluster for every repeat, no worker restarts (a Dask worker's peak there is the largest
        of the runs so far), and processes side by side wherever the clusters are not involved."""
        return cls(
            rows=20_000,
            disk_io_months=2,
            dask_months=2,
            serializer_rows=5_000,
            concurrent_processes=3,
            timed_side_by_side=True,
            cluster_per_repeat=False,
            fresh_workers=False,
            scale_points=(1, 2),
            monitoring_processes=1,
            flow_runs=4,  # the fewest that give the scheduler_growth row 3 samples after the first run
        )


@contextmanager
def prefect_server(workdir: Path) -> Iterator[str]:
    """The Prefect server to run against: the configured one (as in a deployment's run), or a new one for the
    whole run, stopped afterwards (Dask worker processes need a real server's URL). Servers the run starts are
    recorded under `workdir`, so `servers.stop` here never touches the ones `make server` or `make s3` started.

    Nothing is written to `os.environ`: the server gets its home in its own environment, this process its URL
    through `temporary_settings`, and each child process it starts is handed the URL explicitly
    (`tasks.observe.measure.run_child`, and the Dask runner's worker environment).
    """
    records, settings.RUN_DIR = settings.RUN_DIR, workdir / "run"  # never touch servers `make` started
    try:
        if configured := PREFECT_API_URL.value():
            yield configured
            return
        home = workdir / "prefect-home"
        api_url = start_prefect({"PREFECT_HOME": str(home)})["PREFECT_API_URL"]
        try:
            with temporary_settings({PREFECT_API_URL: api_url, PREFECT_HOME: home}):
                yield api_url
                send_what_is_queued_for_the_api()
        finally:
            stop(["prefect"])
    finally:
        settings.RUN_DIR = records


def send_what_is_queued_for_the_api() -> None:
    """Send the logs and events still queued in this process while their server is up. Left queued, they are sent
    at exit to a server already stopped, and the process retries for over a minute before it gives up."""
    APILogWorker.drain_all()
    EventsWorker.drain_all()


def generated_months(rows: int, count: int, workdir: Path) -> tuple[str, list[str]]:
    """The first `count` months of `rows` generated yellow trips of `YEAR`: (source template, months).

    Every case reads these same files (a month read by several cases is generated once). Large months are kept
    under `data/cache/scale/` between runs; small ones (a quick run) are written in `workdir`, in this process.
    """
    large = rows >= CACHE_FROM_ROWS
    folder = (settings.CACHE_DIR / "scale" if large else workdir / "source") / f"yellow-{rows}-rows"
    months = requested_months([YEAR], [])[:count]
    write_months([MonthFile("yellow", month, rows, folder) for month in months], **({} if large else {"jobs": 1}))
    return str(folder / "{service}_tripdata_{month}.parquet"), [str(month) for month in months]


def months_on_disk(size: Size, workdir: Path, count: int) -> tuple[str, list[str]]:
    """`count` generated yellow months of the run's size; returns the source template and the months."""
    return generated_months(size.rows, count, workdir)


def first_month_frame(size: Size, workdir: Path) -> pd.DataFrame:
    """The first generated month, normalized, as the pandas frame the lessons pass to tasks."""
    source, months = months_on_disk(size, workdir, 1)
    uri = source.format(service="yellow", month=months[0])
    return normalize_table(read_trip_file(uri), "yellow", uri).to_pandas()
