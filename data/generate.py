"""Write synthetic TLC monthly files: `python -m data.generate --help`.

    python -m data.generate --sample                        # rewrite the committed sample in data/sample/
    python -m data.generate --service yellow --month 2025-03 --rows 3000000 --out /tmp/tlc

Output is deterministic for a seed (each chunk of rows has its own seed derived from it), so the committed sample
and the benchmarks can be regenerated row for row. Large runs are written in chunks, with a progress bar.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rich.progress import Progress

from data.synthetic import generate_trips, schema_for
from tasks import settings
from tasks.months import Month

CHUNK_ROWS = 500_000
PROGRESS_FROM_ROWS = 1_000_000


def output_file(out_dir: Path, service: str, month: Month) -> Path:
    return out_dir / f"{service}_tripdata_{month}.parquet"


def write_month(
    service: str,
    month: Month,
    rows: int,
    out_dir: Path,
    seed: int = settings.SAMPLE_SEED,
    progress: bool | None = None,
) -> Path:
    """Write one month of `rows` synthetic trips to `out_dir/{service}_tripdata_{YYYY-MM}.parquet`."""
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    path = output_file(out_dir, service, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    chunks = [min(CHUNK_ROWS, rows - start) for start in range(0, rows, CHUNK_ROWS)]
    show = rows >= PROGRESS_FROM_ROWS if progress is None else progress
    with (
        Progress(disable=not show, transient=True) as bar,
        pq.ParquetWriter(temporary, schema_for(service, month), compression="zstd") as writer,
    ):
        job = bar.add_task(f"{service} {month}", total=rows)
        for index, size in enumerate(chunks):
            rng = np.random.default_rng([seed, settings.SERVICES.index(service), month.year, month.month, index])
            writer.write_table(generate_trips(service, month, size, rng), row_group_size=CHUNK_ROWS)
            bar.advance(job, size)
    temporary.replace(path)
    return path


def write_sample() -> list[Path]:
    """Regenerate the committed sample: both services, the sample months, `settings.SAMPLE_ROWS` rows each."""
    return [
        write_month(service, Month.parse(month), settings.SAMPLE_ROWS[service], settings.SAMPLE_DIR)
        for service in settings.SERVICES
        for month in settings.SAMPLE_MONTHS
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="rewrite the committed sample in data/sample/")
    parser.add_argument("--service", action="append", choices=settings.SERVICES, help="repeatable (default: yellow)")
    parser.add_argument("--month", action="append", metavar="YYYY-MM", help="repeatable")
    parser.add_argument("--rows", type=int, default=3_000_000, help="rows per month (default: 3,000,000)")
    parser.add_argument("--seed", type=int, default=settings.SAMPLE_SEED)
    parser.add_argument("--out", type=Path, default=Path("data/generated"), help="output folder")
    args = parser.parse_args(argv)
    if args.sample:
        paths = write_sample()
    elif not args.month:
        parser.error("give --month YYYY-MM (repeatable), or --sample")
    else:
        months = [Month.parse(m) for m in args.month]
        paths = [write_month(s, m, args.rows, args.out, args.seed) for s in args.service or ["yellow"] for m in months]
    for path in paths:
        print(f"{path}  {pq.ParquetFile(path).metadata.num_rows:,} rows  {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
