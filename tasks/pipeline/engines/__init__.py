"""Dataframe engines: a month's steps written once for polars and once for pandas.

`tasks.pipeline.month.run_month` composes an engine's steps (`MonthEngine`: read, check, validate, transform,
write); polars runs them as plans over the file's batches, written in one pass, pandas on tables in memory, and the
parity tests hold both to the same rows. The steps build on each engine's own module (`polars_engine`,
`polars_normalize`, `pandas_engine`), which work on lazy frames or Arrow tables in the project's schemas
(`tasks.schema`).
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa

from tasks.months import Month
from tasks.pipeline.zones import ZoneTable

ENGINE_NAMES = ("polars", "pandas")


class MonthEngine(Protocol):
    """One month's steps; the rows are the engine's own (a polars LazyFrame, an Arrow table)."""

    def read(self, location: str, service: str, source: str) -> Any: ...
    def check(self, rows: Any, month: Month) -> Any: ...
    def validate(self, rows: Any, month: Month, zones: ZoneTable) -> tuple[Any, Any]: ...
    def transform(self, clean: Any, zones: ZoneTable) -> Any: ...
    def write(self, datasets: dict[str, Any], files: dict[str, str]) -> None: ...
    def to_arrow(self, rows: Any) -> pa.Table: ...


def month_engine(name: str) -> MonthEngine:
    """The month steps of the engine called `name`, or a ValueError listing the choices."""
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINE_NAMES)}")
    from tasks.pipeline.engines import pandas_month, polars_month  # they build on tasks.pipeline.validate

    engines: dict[str, MonthEngine] = {"polars": polars_month, "pandas": pandas_month}
    return engines[name]
