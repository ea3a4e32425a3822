"""load: hive layout, atomic replacement of a month, and the same code on S3."""

from __future__ import annotations

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tasks import load as load_module
from tasks import settings
from tasks.load import write_month
from tasks.validate import split_valid
from tests.factories import JAN_2025, trips


@pytest.fixture
def month_tables(known_ids):
    clean, quarantine = split_valid(trips({}, {}, {"total_amount": -3.0}), JAN_2025, known_ids)
    return {"trips": clean, "quarantine": quarantine}


def test_hive_layout_and_readback(tmp_path, month_tables):
    outputs = write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    assert outputs["trips"] == f"{tmp_path}/trips/service=yellow/year=2025/month=01/part-0.parquet"
    dataset = ds.dataset(tmp_path / "trips", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 2
    assert set(table.column("service").to_pylist()) == {"yellow"}  # from the path, not the file
    assert "service" not in pq.read_schema(outputs["trips"]).names


def test_rerun_replaces_the_month_and_leaves_no_temporary_files(tmp_path, month_tables, known_ids):
    write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    smaller, _ = split_valid(trips({}), JAN_2025, known_ids)
    write_month({**month_tables, "trips": smaller}, str(tmp_path), "yellow", JAN_2025)
    files = sorted(p.name for p in (tmp_path / "trips").rglob("*") if p.is_file())
    assert files == ["part-0.parquet"]
    assert pq.read_metadata(next((tmp_path / "trips").rglob("*.parquet"))).num_rows == 1


def test_a_failure_while_writing_keeps_the_previous_month(tmp_path, month_tables, monkeypatch):
    outputs = write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    real_write = load_module.pq.write_table
    calls = []

    def crash_on_second_file(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(table, where, **kwargs)

    monkeypatch.setattr(load_module.pq, "write_table", crash_on_second_file)
    with pytest.raises(OSError, match="disk full"):
        write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    assert pq.read_metadata(outputs["trips"]).num_rows == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["part-0.parquet", "part-0.parquet"]


def test_s3_output(s3_bucket, month_tables):
    outputs = write_month(month_tables, f"s3://{s3_bucket}/out", "green", JAN_2025)
    assert outputs["quarantine"] == f"s3://{s3_bucket}/out/quarantine/service=green/year=2025/month=01/part-0.parquet"
    import s3fs

    filesystem = s3fs.S3FileSystem(client_kwargs={"endpoint_url": settings.s3_endpoint_url()})
    assert filesystem.find(f"{s3_bucket}/out") == [
        f"{s3_bucket}/out/quarantine/service=green/year=2025/month=01/part-0.parquet",
        f"{s3_bucket}/out/trips/service=green/year=2025/month=01/part-0.parquet",
    ]
    with filesystem.open(outputs["quarantine"]) as handle:
        assert pq.read_table(handle).column("reason").to_pylist() == ["non_positive_total"]
