"""Dataframe engines: the same rules and transforms, written once for polars and once for pandas.

A month's steps (`MonthEngine`: read, check, validate, transform, write) are what `tasks.pipeline.month.run_month`
composes; polars runs them as plans over the file's batches, written in one pass, pandas on tables in memory. Under
them, each engine's table functions (`polars_engine`, `pandas_engine`: normalize, split_valid, add_derived_columns)
take and return Arrow tables in the project's schemas, so a parity test can compare the two engines exactly.
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa

from tasks.months import Month
from tasks.pipeline.engines import pandas_engine, polars_engine
from tasks.pipeline.zones import ZoneTable


class MonthEngine(Protocol):
    """One month's steps; `Rows` is the engine's own (a polars LazyFrame, an Arrow table)."""

    def read(self, location: str, service: str, source: str) -> Any: ...
    def check(self, rows: Any, month: Month) -> Any: ...
    def validate(self, rows: Any, month: Month, zones: ZoneTable) -> tuple[Any, Any]: ...
    def transform(self, clean: Any, zones: ZoneTable) -> Any: ...
    def write(self, datasets: dict[str, Any], files: dict[str, str]) -> None: ...
    def to_arrow(self, rows: Any) -> pa.Table: ...


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


def month_engine(name: str) -> MonthEngine:
    """The month steps of the engine called `name`, or a ValueError listing the choices."""
    get_engine(name)
    from tasks.pipeline.engines import (  # they build on tasks.pipeline.validate, which builds on this module
        pandas_month,
        polars_month,
    )

    engines: dict[str, MonthEngine] = {"polars": polars_month, "pandas": pandas_month}
    return engines[name]
