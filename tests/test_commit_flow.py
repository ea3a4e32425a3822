"""The `taxi_etl` flow over the commit protocol: a rerun replaces the month, a failed rerun leaves it untouched."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from flows.etl import taxi_etl
from tasks import settings
from tasks.lake import committed_files, read_month
from tasks.months import Month

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
SAMPLE = settings.SAMPLE_DIR / "green_tripdata_2025-01.parquet"
JAN_2025 = Month.parse("2025-01")


def snapshot(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_rerun_replaces_the_month_with_the_same_result(tmp_path):
    first = taxi_etl(service="green", source=str(SAMPLE), output=str(tmp_path))
    before = read_month(str(tmp_path), "green", JAN_2025)
    first_files = committed_files(str(tmp_path), "green", JAN_2025)
    second = taxi_etl(service="green", source=str(SAMPLE), output=str(tmp_path))
    after = read_month(str(tmp_path), "green", JAN_2025)

    assert first["months"][0]["outputs"] == second["months"][0]["outputs"]
    assert committed_files(str(tmp_path), "green", JAN_2025) != first_files  # a new version...
    assert all(after[d].equals(before[d]) for d in ("trips", "quarantine"))  # ...with the same content
    assert after["trips"].num_rows == second["months"][0]["rows_clean"] > 0
    assert pq.read_table(second["months"][0]["outputs"]["trips"]).equals(after["trips"])
    versions = tmp_path / "_versions/service=green/year=2025/month=01"
    assert sorted(p.name for p in versions.iterdir()) == sorted(
        [committed_files(str(tmp_path), "green", JAN_2025)["trips"].split("/")[-2], "commit.json"]
    )


def test_a_rerun_that_fails_before_load_leaves_the_committed_month_untouched(tmp_path):
    out = tmp_path / "out"
    taxi_etl(service="green", source=str(SAMPLE), output=str(out))
    before = snapshot(out)
    bad = tmp_path / "green_tripdata_2025-01.parquet"
    pq.write_table(pq.read_table(SAMPLE).drop_columns(["total_amount"]), bad)

    state = taxi_etl(service="green", source=str(bad), output=str(out), return_state=True)

    assert state.is_failed() and "total_amount" in state.message
    assert snapshot(out) == before  # no new version staged, no record or plain file touched
