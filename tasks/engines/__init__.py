"""Dataframe engines: the same validation rules and transforms, written once for polars and once for pandas.

Both take and return Arrow tables in the project's schemas, so the rest of the pipeline (extract, load, reports)
never knows which engine ran, and a parity test can compare their outputs exactly.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from tasks.engines import pandas_engine, polars_engine
from tasks.months import Month


class Engine(Protocol):
    def normalize(self, table: pa.Table, service: str, source: str = "<table>") -> pa.Table:
        """The file's rows in `CANONICAL_SCHEMA`, by `tasks.schema.ColumnMapping` (the same mapping each engine)."""
        ...

    def split_valid(self, table: pa.Table, month: Month, known_zone_ids: list[int]) -> tuple[pa.Table, pa.Table]:
        """(clean rows in the canonical schema, quarantined rows with a `reason`)."""
        ...

    def add_derived_columns(self, clean: pa.Table, zones: pa.Table) -> pa.Table:
        """Clean rows in `TRIPS_SCHEMA`: durations, speeds, tip fraction, calendar parts and zone names."""
        ...


ENGINES: dict[str, Engine] = {"polars": polars_engine, "pandas": pandas_engine}


def get_engine(name: str) -> Engine:
    """The engine called `name`, or a ValueError listing the choices."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}") from None
