"""Write synthetic TLC monthly files: `python -m data.generate --help`.

    python -m data.generate --sample                        # rewrite the committed sample in data/sample/
    python -m data.generate --service yellow --year 2024    # 12 months of 3,000,000 rows into data/generated/
    python -m data.generate --service yellow --month 2025-03 --rows 3000000 --out /tmp/tlc

Output is deterministic for a seed: each chunk of rows has its own seed derived from (seed, service, month, chunk),
so a file is the same whichever process writes it and in whatever order the months run. That is what lets a year
be written by several processes (`--jobs`, default 2: numpy's sampling and the parquet encoder each keep about one
core busy) without changing a byte of content. A month already present with the schema and row count asked for is
kept, so rerunning costs only a footer read per file; `--force` rewrites it (needed after changing `--seed`, which
the file does not record). Files appear whole or not at all: each is written under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import Manager
from pathlib import Path
from queue import Empty, Queue

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import Progress

from data.synthetic import generate_trips, schema_for
from tasks import settings
from tasks.months import Month, MonthFormatError

CHUNK_ROWS = 500_000
PROGRESS_FROM_ROWS = 1_000_000
DEFAULT_ROWS = 3_000_000
DEFAULT_JOBS = min(2, os.cpu_count() or 1)
DEFAULT_OUT = Path("data/generated")


def output_file(out_dir: Path, service: str, month: Month) -> Path:
    return out_dir / f"{service}_tripdata_{month}.parquet"


@dataclass(frozen=True)
class MonthFile:
    """One file to generate: `rows` trips of `service` in `month`, drawn from `seed`, written into `out_dir`."""

    service: str
    month: Month
    rows: int
    out_dir: Path
    seed: int = settings.SAMPLE_SEED

    @property
    def path(self) -> Path:
        return output_file(self.out_dir, self.service, self.month)

    @property
    def label(self) -> str:
        return f"{self.service} {self.month}"


def is_present(target: MonthFile) -> bool:
    """True when the file exists, whole, with the schema and row count asked for (read from its footer only)."""
    try:
        existing = pq.ParquetFile(target.path)
    except (FileNotFoundError, pa.ArrowInvalid):
        return False
    with existing:
        return existing.metadata.num_rows == target.rows and existing.schema_arrow.equals(
            schema_for(target.service, target.month)
        )


def _write_file(target: MonthFile, on_chunk: Callable[[int], object]) -> Path:
    """Write `target` chunk by chunk, calling `on_chunk(rows)` after each; rename into place only when whole."""
    if target.rows < 1:
        raise ValueError(f"rows must be positive, got {target.rows}")
    path = target.path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    service_index = settings.SERVICES.index(target.service)
    try:
        with pq.ParquetWriter(temporary, schema_for(target.service, target.month), compression="zstd") as writer:
            for index, start in enumerate(range(0, target.rows, CHUNK_ROWS)):
                size = min(CHUNK_ROWS, target.rows - start)
                rng = np.random.default_rng([target.seed, service_index, target.month.year, target.month.month, index])
                writer.write_table(generate_trips(target.service, target.month, size, rng), row_group_size=CHUNK_ROWS)
                on_chunk(size)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_month(
    service: str,
    month: Month,
    rows: int,
    out_dir: Path,
    seed: int = settings.SAMPLE_SEED,
    progress: bool | None = None,
) -> Path:
    """Write one month of `rows` synthetic trips to `out_dir/{service}_tripdata_{YYYY-MM}.parquet`, always."""
    target = MonthFile(service, month, rows, out_dir, seed)
    show = rows >= PROGRESS_FROM_ROWS if progress is None else progress
    with Progress(disable=not show, transient=True) as bar:
        job = bar.add_task(target.label, total=rows)
        return _write_file(target, lambda size: bar.advance(job, size))


def _write_reporting(target: MonthFile, position: int, progress: Queue) -> Path:
    """`_write_file` in a worker process: chunk progress goes back to the parent as (position, rows)."""
    return _write_file(target, lambda size: progress.put((position, size)))


def _write_in_processes(targets: list[MonthFile], jobs: int, advance: Callable[[int, int], object]) -> None:
    """Write `targets` on `jobs` processes; `advance(position, rows)` runs in this process as chunks finish.

    The first failure is raised once the months already running have finished; months not started are cancelled.
    """
    with Manager() as manager, ProcessPoolExecutor(max_workers=jobs) as pool:
        progress = manager.Queue()
        futures = [pool.submit(_write_reporting, target, position, progress) for position, target in enumerate(targets)]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            while True:
                try:
                    advance(*progress.get_nowait())
                except Empty:
                    break
            if any(future.exception() for future in done):
                for future in pending:
                    future.cancel()
                break
        for future in futures:
            if future.done() and not future.cancelled():
                future.result()


def write_months(
    targets: list[MonthFile], jobs: int = DEFAULT_JOBS, force: bool = False, progress: bool | None = None
) -> list[MonthFile]:
    """Write each target that is not already present (every one with `force`); return those written.

    One progress bar per month being written, shown by default when the months total a million rows or more.
    """
    todo = [target for target in targets if force or not is_present(target)]
    show = sum(target.rows for target in todo) >= PROGRESS_FROM_ROWS if progress is None else progress
    with Progress(disable=not show, transient=True) as bar:
        bars = [bar.add_task(target.label, total=target.rows) for target in todo]
        if jobs > 1 and len(todo) > 1:
            _write_in_processes(todo, min(jobs, len(todo)), lambda position, rows: bar.advance(bars[position], rows))
        else:
            for position, target in enumerate(todo):
                _write_file(target, lambda rows, position=position: bar.advance(bars[position], rows))
    return todo


def write_sample() -> list[Path]:
    """Regenerate the committed sample: both services, the sample months, `settings.SAMPLE_ROWS` rows each."""
    return [
        write_month(service, Month.parse(month), settings.SAMPLE_ROWS[service], settings.SAMPLE_DIR)
        for service in settings.SERVICES
        for month in settings.SAMPLE_MONTHS
    ]


def requested_months(years: list[int], months: list[str]) -> list[Month]:
    """Every month of each year plus each `YYYY-MM`, in calendar order, once each."""
    whole_years = [Month.parse(f"{year:04d}-{number:02d}") for year in years for number in range(1, 13)]
    return sorted(set(whole_years) | {Month.parse(text) for text in months})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="rewrite the committed sample in data/sample/")
    parser.add_argument("--service", action="append", choices=settings.SERVICES, help="repeatable (default: yellow)")
    parser.add_argument("--month", action="append", default=[], metavar="YYYY-MM", help="repeatable")
    parser.add_argument("--year", action="append", default=[], type=int, metavar="YYYY", help="its 12 months")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"rows per month (default: {DEFAULT_ROWS:,})")
    parser.add_argument("--seed", type=int, default=settings.SAMPLE_SEED)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"processes (default: {DEFAULT_JOBS})")
    parser.add_argument("--force", action="store_true", help="rewrite months already present")
    args = parser.parse_args(argv)
    if args.sample:
        for path in write_sample():
            print(f"{path}  {pq.read_metadata(path).num_rows:,} rows  {path.stat().st_size / 1e6:.2f} MB")
        return 0
    if not args.month and not args.year:
        parser.error("give --year YYYY or --month YYYY-MM (both repeatable), or --sample")
    if args.rows < 1 or args.jobs < 1:
        parser.error("--rows and --jobs must be positive")
    try:
        months = requested_months(args.year, args.month)
    except MonthFormatError as error:
        parser.error(str(error))
    targets = [
        MonthFile(service, month, args.rows, args.out, args.seed)
        for service in args.service or ["yellow"]
        for month in months
    ]
    written = set(write_months(targets, jobs=args.jobs, force=args.force))
    for target in targets:
        status = "written" if target in written else "kept (already present; --force rewrites)"
        size = target.path.stat().st_size / 1e6
        print(f"{target.path}  {pq.read_metadata(target.path).num_rows:,} rows  {size:.2f} MB  {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
