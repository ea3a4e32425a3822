"""Validate: split a month's normalized rows into clean trips and quarantined rows with a reason code."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.engines import get_engine
from tasks.months import Month
from tasks.rules import check_row_invariant


def split_valid(
    table: pa.Table, month: Month, known_zone_ids: list[int], engine: str = "polars"
) -> tuple[pa.Table, pa.Table]:
    """(clean, quarantine), with the invariant rows in = clean + quarantined enforced, not assumed."""
    clean, quarantine = get_engine(engine).split_valid(table, month, known_zone_ids)
    check_row_invariant(table.num_rows, clean.num_rows, quarantine.num_rows, f"validate {month}")
    return clean, quarantine


def count_reasons(quarantine: pa.Table) -> dict[str, int]:
    """Quarantined rows per reason code, most frequent first."""
    return dict(Counter(quarantine.column("reason").to_pylist()).most_common())


@task(name="validate", cache_policy=NO_CACHE)
def validate(table: pa.Table, month: Month, known_zone_ids: list[int], engine: str) -> tuple[pa.Table, pa.Table]:
    """Apply the rules in `tasks/rules.py`; no row is dropped, failing rows go to quarantine with a reason."""
    return split_valid(table, month, known_zone_ids, engine)
