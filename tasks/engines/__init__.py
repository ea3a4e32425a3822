"""Dataframe engines: the same validation rules and transforms, written once for polars and once for pandas.

Both take and return Arrow tables in the project's schemas, so the rest of the pipeline (extract, load, reports)
never knows which engine ran, and a parity test can compare their outputs exactly.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Protocol

# polars allocates through its own jemalloc, which `import polars` configures to keep freed pages for a while
# (`dirty_decay_ms:500,muzzy_decay_ms:1000`, appending whatever this variable already holds). A streamed month frees
# each batch as the next arrives, and the kept pages count in the process's RSS. Returning them at once, measured
# with `benchmarks.month_memory` (one run_month per fresh process, sinks at zstd level 1): 3M rows 535-580 MiB
# against 628-688 with polars' settings, 12M rows 684-985 against 910-1338, for about 60% more CPU time (3M rows:
# 6.1-6.3 s against 3.7-3.9 s). jemalloc reads the variable once, when polars is first imported, so it is set here,
# before this package imports polars. A value the user set wins; an empty one keeps polars' own settings.
ALLOCATOR_SETTINGS_VARIABLE = "_RJEM_MALLOC_CONF"
ALLOCATOR_SETTINGS = "dirty_decay_ms:0,muzzy_decay_ms:0"
if "polars" in sys.modules and ALLOCATOR_SETTINGS not in os.environ.get(ALLOCATOR_SETTINGS_VARIABLE, ""):
    warnings.warn(
        f"polars was imported before tasks.engines, so {ALLOCATOR_SETTINGS_VARIABLE}={ALLOCATOR_SETTINGS} cannot "
        "bound a streamed month's memory in this process: import tasks.engines first",
        RuntimeWarning,
        stacklevel=2,
    )
os.environ.setdefault(ALLOCATOR_SETTINGS_VARIABLE, ALLOCATOR_SETTINGS)

import pyarrow as pa  # noqa: E402

from tasks.engines import pandas_engine, polars_engine  # noqa: E402
from tasks.months import Month  # noqa: E402


class Engine(Protocol):
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
