"""Transform: derived columns on clean trips (durations, speed, tip fraction, calendar parts, zone names)."""

from __future__ import annotations

import pyarrow as pa

from tasks.pipeline.engines import get_engine


def add_derived_columns(clean: pa.Table, zones: pa.Table, engine: str = "polars") -> pa.Table:
    """Clean rows in `TRIPS_SCHEMA`. `tip_fraction` is `tip / total` where the total is positive and 0 where it is
    not, so it is never NaN or inf (Prefect's big-data guide divides by `total_amount` unguarded; real files hold
    zeros); it is null only where the quotient overflows (absurd amounts such as a 1e300 tip on a 1e-10 total).

    Durations (and speeds) are between real instants: see `tasks.pipeline.rules.DURATION_ON_INSTANTS`.
    """
    return get_engine(engine).add_derived_columns(clean, zones)
