"""`taxi_etl` over the Delta lake: a rerun replaces the month, a failed rerun leaves it untouched, a re-executed
month of one flow run commits once, and a mostly-quarantined month is refused unless the run asks for it."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect import flow

from flows.etl import taxi_etl
from tasks import settings
from tasks.lake import month_lineage, open_table, read_month
from tasks.months import Month
from tasks.pipeline.month import etl_month
from tasks.pipeline.zones import load_zone_table

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
SAMPLE = settings.SAMPLE_DIR / "green_tripdata_2025-01.parquet"
JAN_2025 = Month.parse("2025-01")


def test_a_rerun_replaces_the_month_with_the_same_result_and_keeps_the_old_version(tmp_path):
    root = str(tmp_path)
    first = taxi_etl(service="green", source=str(SAMPLE), output=root)
    before = read_month(root, "green", JAN_2025)
    second = taxi_etl(service="green", source=str(SAMPLE), output=root)
    after = read_month(root, "green", JAN_2025)

    assert (
        first["months"][0]["outputs"]
        == second["months"][0]["outputs"]
        == {
            "trips": f"{root}/trips",
            "quarantine": f"{root}/quarantine",
        }
    )
    assert second["months"][0]["versions"] == {"trips": 1, "quarantine": 1}  # a new version...
    assert all(after[d].equals(before[d]) for d in ("trips", "quarantine"))  # ...with the same content
    assert after["trips"].num_rows == second["months"][0]["rows_clean"] > 0
    old = open_table(root, "trips", version=0).to_pyarrow_table()  # the previous version stays readable
    assert old.num_rows == after["trips"].num_rows
    lineage = month_lineage(root, "green", JAN_2025)
    assert lineage["flow_run_id"] is not None and lineage["source"] == str(SAMPLE)


def test_a_rerun_that_fails_before_load_leaves_the_month_untouched(tmp_path):
    out = str(tmp_path / "out")
    taxi_etl(service="green", source=str(SAMPLE), output=out)
    bad = tmp_path / "green_tripdata_2025-01.parquet"
    pq.write_table(pq.read_table(SAMPLE).drop_columns(["total_amount"]), bad)

    state = taxi_etl(service="green", source=str(bad), output=out, return_state=True)

    assert state.is_failed() and "total_amount" in state.message
    assert [open_table(out, name).version() for name in ("trips", "quarantine")] == [0, 0]  # no commit at all


def test_a_re_executed_month_of_the_same_flow_run_commits_once(tmp_path):
    """What a lost Dask worker or a retried task does: the month runs again in the same flow run."""
    root, zones = str(tmp_path), load_zone_table()

    @flow
    def twice() -> list:
        return [etl_month.fn(str(SAMPLE), "green", JAN_2025, root, zones, "polars") for _ in range(2)]

    first, again = twice()
    assert open_table(root, "trips").version() == 0 and open_table(root, "quarantine").version() == 0
    assert (again.rows_in, again.rows_clean, again.rows_quarantined) == (
        first.rows_in,
        first.rows_clean,
        first.rows_quarantined,
    )
    assert again.versions == first.versions == {"trips": 0, "quarantine": 0}


def test_a_mostly_quarantined_month_fails_the_run_unless_it_asks(tmp_path):
    out = str(tmp_path / "out")
    taxi_etl(service="green", source=str(SAMPLE), output=out)
    zeros = pq.read_table(SAMPLE)
    zeros = zeros.set_column(zeros.schema.get_field_index("total_amount"), "total_amount", pa.array([0.0] * len(zeros)))
    bad = tmp_path / "green_tripdata_2025-01.parquet"
    pq.write_table(zeros, bad)

    state = taxi_etl(service="green", source=str(bad), output=out, return_state=True)
    assert state.is_failed() and "QuarantineShareError" in state.message and "allow_high_quarantine" in state.message
    assert read_month(out, "green", JAN_2025)["trips"].num_rows > 0  # the previous month stays

    taxi_etl(service="green", source=str(bad), output=out, allow_high_quarantine=True)
    assert read_month(out, "green", JAN_2025)["trips"].num_rows == 0
