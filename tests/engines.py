"""Both engines on tables in memory, for the rule, property and parity tests.

A run never needs these: `tasks.pipeline.month.run_month` composes each engine's month steps. The tests hold the
two engines to the same rows table by table, so they call the steps on Arrow tables: pandas' own table functions,
and polars' lazy steps on a table made lazy and collected again.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import polars as pl
import pyarrow as pa

from tasks.months import Month
from tasks.pipeline.engines import pandas_engine
from tasks.pipeline.engines.polars_engine import (
    DURATION_US,
    derive,
    distinct_hours,
    flag_rows,
    hour_pairs,
    offsets_by_hour,
    with_trip_duration,
)
from tasks.pipeline.engines.polars_normalize import normalized_columns
from tasks.pipeline.rules import check_row_invariant
from tasks.pipeline.validate import check_month_matches
from tasks.schema import CANONICAL_SCHEMA, QUARANTINE_SCHEMA, TRIPS_SCHEMA


def _timed(table: pa.Table) -> pl.LazyFrame:
    frame = pl.from_arrow(table).lazy()
    return with_trip_duration(frame, offsets_by_hour(distinct_hours(hour_pairs(frame).collect())))


def _polars_split_valid(table: pa.Table, month: Month, known_zone_ids: list[int]) -> tuple[pa.Table, pa.Table]:
    flagged = flag_rows(_timed(table), month, known_zone_ids).drop(DURATION_US).collect()
    clean = flagged.filter(pl.col("reason").is_null()).drop("reason")
    quarantine = flagged.filter(pl.col("reason").is_not_null())
    return clean.to_arrow().cast(CANONICAL_SCHEMA), quarantine.to_arrow().cast(QUARANTINE_SCHEMA)


def _polars_add_derived_columns(clean: pa.Table, zones: pa.Table) -> pa.Table:
    derived = derive(_timed(clean), pl.from_arrow(zones)).select(TRIPS_SCHEMA.names)
    return derived.collect().to_arrow().cast(TRIPS_SCHEMA)


def _polars_normalize(table: pa.Table, service: str, source: str = "<table>") -> pa.Table:
    frame = pl.from_arrow(table).lazy()
    return frame.select(normalized_columns(frame, service, source)).collect().to_arrow().cast(CANONICAL_SCHEMA)


ENGINES = {
    "polars": SimpleNamespace(
        normalize=_polars_normalize, split_valid=_polars_split_valid, add_derived_columns=_polars_add_derived_columns
    ),
    "pandas": pandas_engine,
}


def get_engine(name: str):
    return ENGINES[name]


def split_valid(
    table: pa.Table, month: Month, known_zone_ids: list[int], engine: str = "polars"
) -> tuple[pa.Table, pa.Table]:
    """(clean, quarantine) as a month's check and validate steps give them, the row invariant checked."""
    check_month_matches(table, month)
    clean, quarantine = get_engine(engine).split_valid(table, month, known_zone_ids)
    check_row_invariant(table.num_rows, clean.num_rows, quarantine.num_rows, f"validate {month}")
    return clean, quarantine


def add_derived_columns(clean: pa.Table, zones: pa.Table, engine: str = "polars") -> pa.Table:
    """Clean rows in `TRIPS_SCHEMA`, as a month's transform step gives them."""
    return get_engine(engine).add_derived_columns(clean, zones)


def count_reasons(quarantine: pa.Table) -> dict[str, int]:
    """Quarantined rows per reason code, most frequent first."""
    return dict(Counter(quarantine.column("reason").to_pylist()).most_common())
