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

from data.generate import write_month
from servers import start_prefect, stop
from tasks import settings
from tasks.months import Month
from tasks.pipeline.extract import read_trip_file
from tasks.schema import normalize_table

MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]


@dataclass
class Size:
    """How much data each case runs on, and how many times each variant is measured."""

    rows: int
    disk_io_months: int
    dask_months: int
    serializer_rows: int
    repeats: int = 3
    concurrent_processes: int = 1  # memory measurements that may run side by side
    scale_points: tuple[int, ...] = (1, 3, 6, 12)  # month counts of the scale section; the last one is "the year"
    monitoring_processes: int | None = None  # fresh processes per variant of `monitoring_overhead` (None: repeats)
    flow_runs: int = 20  # consecutive taxi_etl runs on one Dask cluster whose scheduler's memory is followed

    @classmethod
    def full(cls) -> Size:
        return cls(rows=3_000_000, disk_io_months=3, dask_months=8, serializer_rows=300_000)

    @classmethod
    def quick(cls) -> Size:
        """Tiny months, and as few fresh processes as the rows' three samples allow: a quick run checks the
        machinery (each process imports Prefect, seconds of CPU on a small machine), its figures mean little."""
        return cls(
            rows=20_000,
            disk_io_months=2,
            dask_months=2,
            serializer_rows=5_000,
            concurrent_processes=3,
            scale_points=(1, 2),
            monitoring_processes=1,
            flow_runs=6,
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


def months_on_disk(size: Size, workdir: Path, count: int) -> tuple[str, list[str]]:
    """`count` generated yellow months (reused across cases); returns the source template and the months."""
    folder = workdir / "source"
    months = MONTHS[:count]
    for month in months:
        if not (folder / f"yellow_tripdata_{month}.parquet").exists():
            write_month("yellow", Month.parse(month), size.rows, folder)
    return str(folder / "{service}_tripdata_{month}.parquet"), months


def first_month_frame(size: Size, workdir: Path) -> pd.DataFrame:
    """The first generated month, normalized, as the pandas frame the lessons pass to tasks."""
    source, months = months_on_disk(size, workdir, 1)
    uri = source.format(service="yellow", month=months[0])
    return normalize_table(read_trip_file(uri), "yellow", uri).to_pandas()
