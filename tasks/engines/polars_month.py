"""One month as one polars lazy plan, from scan to sinks, run by polars' streaming engine in bounded memory.

The plan (`tasks.engines.polars_plan`): scan the source, normalize it, compute each trip's duration, flag every row
with the first rule it breaks, derive the trip columns with the zone names. This module runs it: both datasets,
trips and quarantine, are sunk into local parquet files, which `tasks.pipeline` then commits to the lake's Delta
tables as they are (`tasks.lake`). The streaming engine holds batches of rows, not the month. The two sinks
run one after the other, each reading the source again: measured on a 12M-row generated month, one
`pl.collect_all` of both sinks peaked at 2.9 GB RSS and two sinks in turn at 1.9 GB (3M rows: 1.2 GB and 1.0 GB),
for about a second more of reading. What else bounds the peak, and what was measured, is in
`benchmarks/month_memory.py`.

Two small facts must be known before the rows stream by, so a first pass computes only them (a group-by and a
`unique` over the time columns, also streamed): the rows per pickup month, for the wrong-month guard that must
refuse a file before anything is written, and the distinct wall-clock hours, whose New York UTC offsets give the
DST-aware durations (`polars_engine.offsets_by_hour`). The counts for the summary are read afterwards from what
was written: row counts from the parquet footers, reasons from a group-by over the quarantine file's one column.
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
# batches waiting for it pile up (no setting found bounds that queue; POLARS_INFLIGHT_SINK_MORSEL_LIMIT=1 did not):
# at level 3 a 12M-row month's RSS climbed through the whole trips sink, to 1.3 GiB, falling only as the encoder
# caught up. Level 1 encodes faster, so less piles up: 0.64 GiB for the same sink in one run, but 0.68-0.98 GiB for
# the whole month over runs (`benchmarks/month_memory.py`): the backlog depends on how fast the encoder runs next to
# the scan, so memory is not yet bounded by the plan alone. The values written are the same (file sizes unmeasured).
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
