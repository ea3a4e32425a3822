"""Engine parity: polars and pandas produce the same rows and values on the committed sample."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tasks import settings
from tasks.extract import read_trip_file
from tasks.months import Month
from tasks.schema import normalize_table
from tasks.transform import add_derived_columns
from tasks.validate import split_valid

# polars quotients can differ from numpy's in the last bit (seen here on 13% of 1M random divisions).
FLOAT_TOLERANCE = 1e-12


def run_pure(source: str, service: str, month: Month, known_ids, zones, engine: str) -> tuple[pa.Table, pa.Table]:
    table = normalize_table(read_trip_file(source), service, source)
    clean, quarantine = split_valid(table, month, known_ids, engine)
    return add_derived_columns(clean, zones, engine), quarantine


def assert_same_tables(left: pa.Table, right: pa.Table) -> None:
    assert left.schema == right.schema
    assert left.num_rows == right.num_rows
    for name in left.column_names:
        a, b = left.column(name), right.column(name)
        if pa.types.is_floating(a.type):
            assert a.is_null().equals(b.is_null()), name
            np.testing.assert_allclose(
                a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False), rtol=FLOAT_TOLERANCE, err_msg=name
            )
        else:
            assert a.equals(b), name


@pytest.mark.parametrize("service", settings.SERVICES)
@pytest.mark.parametrize("month", settings.SAMPLE_MONTHS)
def test_polars_and_pandas_agree_on_the_sample(service, month, known_ids, zones):
    source = settings.SAMPLE_SOURCE.format(service=service, month=month)
    polars_trips, polars_quarantine = run_pure(source, service, Month.parse(month), known_ids, zones, "polars")
    pandas_trips, pandas_quarantine = run_pure(source, service, Month.parse(month), known_ids, zones, "pandas")
    assert polars_quarantine.equals(pandas_quarantine)
    assert_same_tables(polars_trips, pandas_trips)
    assert polars_quarantine.num_rows > 0 and polars_trips.num_rows > 0
