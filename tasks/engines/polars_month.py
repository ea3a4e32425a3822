"""One month as one polars lazy plan, from scan to sinks, run by polars' streaming engine in bounded memory.

The plan is `tasks.engines.polars_plan`'s; this module sinks its two datasets, trips and quarantine, into local
parquet files, which `tasks.pipeline` commits to the lake as written. The streaming engine holds batches of rows,
not the month, and the two sinks run one after the other, each reading the source again: a little more reading
for a lower peak than one `pl.collect_all` of both.

A first streamed pass computes the two facts needed before the rows go by: the rows per pickup month (the
wrong-month guard refuses a file before anything is written) and the distinct wall-clock hours, whose New York
offsets give DST-aware durations. The summary's counts are read afterwards from what was written (parquet footers,
a group-by over the quarantine file's reasons). What bounds the peak, as measured: `benchmarks/README.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
import pyarrow.parquet as pq

from tasks.engines.polars_engine import distinct_hours
from tasks.engines.polars_plan import held_by_name, month_plans, months_held, open_month, read_one_row_group_ahead
from tasks.months import Month
from tasks.rules import check_row_invariant
from tasks.settings import PARQUET_COMPRESSION
from tasks.validate import check_months_held
from tasks.zones import ZoneTable

DATASETS = ("trips", "quarantine")

# The sinks' zstd level. The parquet encoder is the plan's slowest stage, and polars' streaming engine lets the
# batches waiting for it pile up (no polars setting was found to bound that queue): level 1 encodes faster than 3,
# so less piles up, and the values written are the same. The backlog still depends on the encoder's pace next to the
# scan (benchmarks/README.md, "Streaming a month").
SINK_COMPRESSION_LEVEL = 1


@dataclass
class MonthCounts:
    """What a streamed month did, counted from its source's footer and from the files written."""

    rows_in: int
    rows_clean: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)


def _count_written(counts: MonthCounts, paths: dict[str, str]) -> None:
    counts.rows_clean = pq.read_metadata(paths["trips"]).num_rows
    counts.rows_quarantined = pq.read_metadata(paths["quarantine"]).num_rows
    reasons = pl.scan_parquet(paths["quarantine"]).group_by("reason").agg(rows=pl.len()).collect()
    ordered = reasons.sort(["rows", "reason"], descending=[True, False])
    counts.quarantined_by_reason = dict(ordered.iter_rows())


def stream_month(
    source: str, service: str, month: Month, zones: ZoneTable, folder: str
) -> tuple[dict[str, str], MonthCounts]:
    """Run one month's plan into local parquet files in `folder`: `({"trips": path, "quarantine": path}, counts)`.

    Pure: it writes only into `folder`, which the caller owns (and removes); loading the files into the lake is the
    caller's step (`tasks.pipeline`). Raises `WrongMonthError`, `ServiceMismatchError`/`SchemaError`/`SourceError`
    before anything is written.
    """
    read_one_row_group_ahead()
    paths = {name: f"{folder.rstrip('/')}/{name}.parquet" for name in DATASETS}
    with open_month(source, service) as (frame, rows_in):  # a staged copy of the source goes when the block ends
        held, hours = pl.collect_all([months_held(frame), distinct_hours(frame)], engine="streaming")
        check_months_held(held_by_name(held), month)
        plans = month_plans(frame, hours["hour"], month, zones)
        for name in DATASETS:
            plans[name].sink_parquet(
                paths[name], compression=PARQUET_COMPRESSION, compression_level=SINK_COMPRESSION_LEVEL, lazy=True
            ).collect(engine="streaming")
    counts = MonthCounts(rows_in=rows_in)
    _count_written(counts, paths)
    check_row_invariant(rows_in, counts.rows_clean, counts.rows_quarantined, f"stream {service} {month}")
    return paths, counts
