"""`run_month` end to end: the polars engine's streaming plan writes what the in-memory pandas engine writes.

Each test runs the real month function on a real parquet file into a real lake (a folder, or a moto S3 bucket)
and reads back what was committed, so it fails if the plan drops, adds or changes a row, a column or a count,
or writes anything when a guard refuses the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.generate import write_month
from tasks import settings
from tasks.lake import month_lineage, open_table, read_month
from tasks.lake.write_lock import WriteLockTimeout, month_write_lock
from tasks.months import Month
from tasks.pipeline.month import QuarantineShareError, etl_month, run_month
from tasks.pipeline.validate import WrongMonthError
from tasks.pipeline.zones import load_zone_table
from tasks.schema import QUARANTINE_SCHEMA, TRIPS_SCHEMA, SchemaError, ServiceMismatchError
from tests.factories import VALID_TRIP, copies_of, trips
from tests.test_parity import assert_same_tables

JAN_2025 = Month(2025, 1)
NOV_2024 = Month(2024, 11)
FILE_SCHEMAS = {
    "trips": pa.schema([f for f in TRIPS_SCHEMA if f.name != "service"]),
    "quarantine": pa.schema([f for f in QUARANTINE_SCHEMA if f.name != "service"]),
}


def sample_file(service: str, month: str) -> str:
    return str(Path(settings.PROJECT_ROOT) / "data" / "sample" / f"{service}_tripdata_{month}.parquet")


def run_both_engines(source: str, service: str, month: Month, tmp_path: Path) -> dict[str, dict]:
    """Run the month with each engine into its own lake; returns {engine: {"summary", "tables"}}."""
    zones = load_zone_table()
    results = {}
    for engine in ("polars", "pandas"):
        root = str(tmp_path / engine)
        summary = run_month(source, service, month, root, zones, engine)
        results[engine] = {"summary": summary, "tables": read_month(root, service, month)}
    return results


def assert_engines_agree(results: dict[str, dict]) -> None:
    streamed, in_memory = results["polars"], results["pandas"]
    for dataset, schema in FILE_SCHEMAS.items():
        # Strings come back as large_string from a polars-written file and string from pyarrow's: same values.
        assert streamed["tables"][dataset].schema.names == schema.names
        assert_same_tables(streamed["tables"][dataset].cast(schema), in_memory["tables"][dataset].cast(schema))
    summaries = [results[e]["summary"] for e in ("polars", "pandas")]
    for counted in ("rows_in", "rows_clean", "rows_quarantined", "quarantined_by_reason"):
        assert getattr(summaries[0], counted) == getattr(summaries[1], counted), counted
    assert summaries[0].rows_clean == streamed["tables"]["trips"].num_rows
    assert summaries[0].rows_quarantined == streamed["tables"]["quarantine"].num_rows


@pytest.mark.parametrize("service", settings.SERVICES)
def test_streamed_and_in_memory_months_are_the_same(service, tmp_path):
    results = run_both_engines(sample_file(service, "2025-01"), service, JAN_2025, tmp_path)
    assert_engines_agree(results)
    assert results["polars"]["summary"].rows_quarantined > 0  # the sample exercises the rules, not only clean rows


def test_durations_across_the_autumn_change_are_the_same_streamed(tmp_path):
    """The repeated 01:00 hour of 2024-11-03: durations between real instants, from the offsets table."""
    at = datetime
    rows = trips(
        {"pickup_datetime": at(2024, 11, 3, 1, 50), "dropoff_datetime": at(2024, 11, 3, 1, 10)},  # 20 min, not -40
        {"pickup_datetime": at(2024, 11, 3, 0, 55), "dropoff_datetime": at(2024, 11, 3, 1, 5)},
        {"pickup_datetime": at(2024, 11, 3, 1, 30), "dropoff_datetime": at(2024, 11, 3, 2, 10)},
        {"pickup_datetime": at(2024, 11, 10, 9, 0), "dropoff_datetime": at(2024, 11, 10, 9, 30)},
        {"pickup_datetime": at(2024, 10, 31, 23, 0), "dropoff_datetime": at(2024, 11, 1, 0, 30)},  # stray month
    ).drop_columns(["service", "trip_type"])  # `trip_type` marks a green file
    source = tmp_path / "yellow_tripdata_2024-11.parquet"
    pq.write_table(rows, source)
    results = run_both_engines(str(source), "yellow", NOV_2024, tmp_path)
    assert_engines_agree(results)
    durations = results["polars"]["tables"]["trips"].column("trip_duration_min").to_pylist()
    assert durations[0] == pytest.approx(20.0)
    assert results["polars"]["summary"].quarantined_by_reason == {"pickup_outside_month": 1}


def test_real_file_streamed_and_in_memory_are_the_same(real_data, tmp_path):
    source = real_data / "green_tripdata_2023-01.parquet"
    if not source.exists():
        pytest.skip(f"{source} not found")
    assert_engines_agree(run_both_engines(str(source), "green", Month(2023, 1), tmp_path))


# The child of the check test: a month's `read`, then its `check` alone; prints the bytes the check added at its peak.
CHECK_AND_MEASURE = """
import sys
from tasks.months import Month
from tasks.observe.peak_memory import peak_rss_bytes
from tasks.pipeline.engines import polars_month
from tests.resident_memory import resident_bytes
rows = polars_month.read(sys.argv[1], "yellow", sys.argv[1])
with open("/proc/self/clear_refs", "w") as marks:
    marks.write("5")  # Linux restarts the high-water mark from here: what follows is the check's own
before = resident_bytes()
polars_month.check(rows, Month(2025, 1))
print(peak_rss_bytes() - before)
"""


def held_checking(path: Path) -> int:
    """Peak bytes `check` adds in a fresh process, on the file at `path`. polars' allocator is told to return freed
    pages at once, so the figure is what the check holds, not what the allocator keeps for later."""
    allocator = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK_AND_MEASURE, str(path)],
        cwd=settings.PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **allocator},
    )
    return int(done.stdout.split()[-1])


def test_checking_a_month_holds_its_hours_not_its_rows(tmp_path):
    """The whole-file check (rows per pickup month, distinct hours) runs before the rows go by: a file 4 times
    larger must cost it about the same, or a big month's peak grows with its rows."""
    month = write_month("yellow", JAN_2025, 1_000_000, tmp_path, progress=False)
    small, large = copies_of(month, 2, tmp_path), copies_of(month, 8, tmp_path)
    grown = held_checking(large) - held_checking(small)
    more = large.stat().st_size - small.stat().st_size
    assert grown < more / 4, f"{grown / 2**20:.0f} MiB more held for a file {more / 2**20:.0f} MiB larger"


def nothing_written(root: str, month: Month) -> bool:
    """No table was even created, or the month is absent from both (no commit touched it)."""
    tables = [open_table(root, name) for name in ("trips", "quarantine")]
    return all(t is None for t in tables) or read_month(root, "yellow", month) == {}


def test_a_file_of_another_month_is_refused_and_nothing_is_written(tmp_path):
    root = str(tmp_path / "lake")
    with pytest.raises(WrongMonthError, match="the file holds 2025-01"):
        run_month(sample_file("yellow", "2025-01"), "yellow", Month(2025, 3), root, load_zone_table(), "polars")
    assert nothing_written(root, Month(2025, 3))


def test_a_committed_month_survives_a_refused_rerun(tmp_path):
    root, zones, source = str(tmp_path / "lake"), load_zone_table(), sample_file("yellow", "2025-01")
    run_month(source, "yellow", JAN_2025, root, zones, "polars")
    before = read_month(root, "yellow", JAN_2025)
    with pytest.raises(WrongMonthError):
        run_month(sample_file("yellow", "2025-02"), "yellow", JAN_2025, root, zones, "polars")
    after = read_month(root, "yellow", JAN_2025)
    assert all(after[name].equals(before[name]) for name in before)


def test_green_columns_are_refused_for_yellow_and_nothing_is_written(tmp_path):
    root = str(tmp_path / "lake")
    with pytest.raises(ServiceMismatchError, match="green taxi columns"):
        run_month(sample_file("green", "2025-01"), "yellow", JAN_2025, root, load_zone_table(), "polars")
    assert nothing_written(root, JAN_2025)


@pytest.mark.parametrize("engine", ["polars", "pandas"])
def test_a_fractional_code_is_refused_not_truncated(engine, tmp_path):
    rows = pa.Table.from_pylist([{**VALID_TRIP, "passenger_count": 1.5}]).drop_columns(["service"])
    source = tmp_path / "yellow_tripdata_2025-01.parquet"
    assert rows.schema.field("passenger_count").type == pa.float64()
    pq.write_table(rows, source)
    root = str(tmp_path / "lake")
    with pytest.raises(SchemaError, match="passenger_count"):
        run_month(str(source), "yellow", JAN_2025, root, load_zone_table(), engine)
    assert nothing_written(root, JAN_2025)


def test_a_month_streams_into_an_s3_lake(s3_bucket, tmp_path):
    """An S3 source is scanned by polars; the month's local temporary files stream into the Delta tables on S3."""
    root, zones, local_source = f"s3://{s3_bucket}/lake", load_zone_table(), sample_file("yellow", "2025-01")
    source = f"s3://{s3_bucket}/tlc/yellow_tripdata_2025-01.parquet"
    import fsspec

    fsspec.core.url_to_fs(source, **settings.fsspec_options(source))[0].put_file(local_source, source)
    streamed = run_month(source, "yellow", JAN_2025, root, zones, "polars")  # scanned from S3, sunk to S3
    local = run_month(local_source, "yellow", JAN_2025, str(tmp_path / "lake"), zones, "pandas")
    assert streamed.outputs["trips"] == f"s3://{s3_bucket}/lake/trips"
    on_s3, on_disk = read_month(root, "yellow", JAN_2025), read_month(str(tmp_path / "lake"), "yellow", JAN_2025)
    for dataset, schema in FILE_SCHEMAS.items():
        assert_same_tables(on_s3[dataset].cast(schema), on_disk[dataset].cast(schema))
    assert streamed.quarantined_by_reason == local.quarantined_by_reason


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("engine", ["polars", "pandas"])
def test_etl_month_commits_only_holding_the_month_write_limit(engine, tmp_path, monkeypatch):
    """While another writer holds the month's slot, `etl_month` waits, and gives up without committing."""
    monkeypatch.setattr(settings, "WRITE_LOCK_TIMEOUT_SECONDS", 2)
    root = str(tmp_path / "lake")
    with month_write_lock("yellow", JAN_2025), pytest.raises(WriteLockTimeout, match="taxi-write-yellow-2025-01"):
        etl_month.fn(sample_file("yellow", "2025-01"), "yellow", JAN_2025, root, load_zone_table(), engine)
    assert nothing_written(root, JAN_2025)
    summary = etl_month.fn(sample_file("yellow", "2025-01"), "yellow", JAN_2025, root, load_zone_table(), engine)
    assert read_month(root, "yellow", JAN_2025)["trips"].num_rows == summary.rows_clean > 0


def test_a_month_mostly_quarantined_is_refused_and_the_previous_month_stays(tmp_path):
    """A structurally valid file whose every `total_amount` is 0 would replace a good month with no trips."""
    root, zones, source = str(tmp_path / "lake"), load_zone_table(), sample_file("yellow", "2025-01")
    run_month(source, "yellow", JAN_2025, root, zones, "polars")
    before = read_month(root, "yellow", JAN_2025)
    zeros = pq.read_table(source)
    zeros = zeros.set_column(zeros.schema.get_field_index("total_amount"), "total_amount", pa.array([0.0] * len(zeros)))
    bad = tmp_path / "yellow_tripdata_2025-01.parquet"
    pq.write_table(zeros, bad)
    for engine in ("polars", "pandas"):
        with pytest.raises(QuarantineShareError, match="100% of 50,000 rows quarantined"):
            run_month(str(bad), "yellow", JAN_2025, root, zones, engine)
    after = read_month(root, "yellow", JAN_2025)
    assert all(after[name].equals(before[name]) for name in before)
    asked = run_month(str(bad), "yellow", JAN_2025, root, zones, "polars", allow_high_quarantine=True)
    assert asked.rows_clean == 0 and read_month(root, "yellow", JAN_2025)["trips"].num_rows == 0


def test_every_commit_records_who_wrote_the_month_from_what(tmp_path, http_root):
    """Outside a flow run the run and deployment are None; the source keeps no credentials."""
    folder, base = http_root
    (folder / "yellow_tripdata_2025-01.parquet").write_bytes(Path(sample_file("yellow", "2025-01")).read_bytes())
    source = f"{base}/yellow_tripdata_2025-01.parquet?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIA"
    root = str(tmp_path / "lake")
    summary = run_month(source, "yellow", JAN_2025, root, load_zone_table(), "polars")
    lineage = month_lineage(root, "yellow", JAN_2025)
    assert (lineage["flow_run_id"], lineage["deployment"]) == (None, None)
    assert "s3cr3t" not in str(lineage) and "AKIA" not in str(lineage)
    assert lineage["source"].startswith(f"{base}/yellow_tripdata_2025-01.parquet?X-Amz-Signature=<redacted>")
    assert lineage["source_fingerprint"]["size"] == summary.bytes_read > 0
    counts = (lineage["rows_in"], lineage["rows_clean"], lineage["rows_quarantined"])
    assert counts == (summary.rows_in, summary.rows_clean, summary.rows_quarantined)
    assert set(lineage["output_version"]) == {"code", "rules", "zones"}
