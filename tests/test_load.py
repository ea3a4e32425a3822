"""load: hive layout, the commit record that publishes a month's datasets together, and the same code on S3."""

from __future__ import annotations

import json

import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tasks import commit as commit_module
from tasks import lake, settings
from tasks.lake import committed_files, read_month
from tasks.load import write_month
from tasks.validate import split_valid
from tests.factories import JAN_2025, trips


@pytest.fixture
def month_tables(known_ids):
    clean, quarantine = split_valid(trips({}, {}, {"total_amount": -3.0}), JAN_2025, known_ids)
    return {"trips": clean, "quarantine": quarantine}


def visible_files(root) -> list[str]:
    """Every file a hive reader of `trips/` or `quarantine/` could pick up, relative to the root."""
    return sorted(
        str(p.relative_to(root)) for d in ("trips", "quarantine") for p in (root / d).rglob("*") if p.is_file()
    )


def test_hive_layout_and_readback(tmp_path, month_tables):
    outputs = write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    assert outputs["trips"] == f"{tmp_path}/trips/service=yellow/year=2025/month=01/part-0.parquet"
    dataset = ds.dataset(tmp_path / "trips", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 2
    assert set(table.column("service").to_pylist()) == {"yellow"}  # from the path, not the file
    assert "service" not in pq.read_schema(outputs["trips"]).names
    # polars reads every file in a folder, hidden ones too: the dataset folders must hold only the plain view
    assert pl.scan_parquet(tmp_path / "trips", hive_partitioning=True).collect().height == 2


def test_the_commit_record_names_one_version_of_every_dataset(tmp_path, month_tables):
    outputs = write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    record = json.loads((tmp_path / "_versions/service=yellow/year=2025/month=01/commit.json").read_text())
    assert record["datasets"] == ["trips", "quarantine"]  # published in this order
    files = committed_files(str(tmp_path), "yellow", JAN_2025)
    assert {d: uri.split("/")[-2] for d, uri in files.items()} == {
        "trips": record["version"],
        "quarantine": record["version"],
    }
    tables = read_month(str(tmp_path), "yellow", JAN_2025)
    for dataset in ("trips", "quarantine"):
        assert tables[dataset].equals(pq.read_table(outputs[dataset]))  # the plain view is the committed version
    assert tables["quarantine"].column("reason").to_pylist() == ["non_positive_total"]


def test_a_month_never_written_reads_as_empty(tmp_path):
    assert committed_files(str(tmp_path), "green", JAN_2025) == {}
    assert read_month(str(tmp_path), "green", JAN_2025) == {}


def test_rerun_replaces_the_month_and_collects_the_old_version(tmp_path, month_tables, known_ids):
    write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    first = committed_files(str(tmp_path), "yellow", JAN_2025)
    smaller, _ = split_valid(trips({}), JAN_2025, known_ids)
    write_month({**month_tables, "trips": smaller}, str(tmp_path), "yellow", JAN_2025)
    second = committed_files(str(tmp_path), "yellow", JAN_2025)
    assert first["trips"] < second["trips"]  # version ids sort in commit order
    assert visible_files(tmp_path) == [
        "quarantine/service=yellow/year=2025/month=01/part-0.parquet",
        "trips/service=yellow/year=2025/month=01/part-0.parquet",
    ]
    versions = tmp_path / "_versions/service=yellow/year=2025/month=01"
    assert sorted(p.name for p in versions.iterdir()) == [second["trips"].split("/")[-2], "commit.json"]
    assert pq.read_metadata(next((tmp_path / "trips").rglob("*.parquet"))).num_rows == 1
    assert read_month(str(tmp_path), "yellow", JAN_2025)["trips"].num_rows == 1


def test_a_failure_while_writing_keeps_the_previous_month(tmp_path, month_tables, monkeypatch):
    outputs = write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    before = committed_files(str(tmp_path), "yellow", JAN_2025)
    real_write = commit_module.pq.write_table
    calls = []

    def crash_on_second_file(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(table, where, **kwargs)

    monkeypatch.setattr(commit_module.pq, "write_table", crash_on_second_file)
    with pytest.raises(OSError, match="disk full"):
        write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    assert pq.read_metadata(outputs["trips"]).num_rows == 2
    assert committed_files(str(tmp_path), "yellow", JAN_2025) == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "commit.json",
        "part-0.parquet",
        "part-0.parquet",
        "quarantine.pq",
        "trips.pq",
    ]


def test_a_new_version_is_later_than_the_committed_one_even_if_the_clock_is_behind():
    committed = "29991231T235959.999999Z-0123abcd"  # written by a machine whose clock runs far ahead
    assert lake.next_version(committed) > committed
    assert lake.is_version(lake.next_version(None))


def test_s3_output(s3_bucket, month_tables):
    root = f"s3://{s3_bucket}/out"
    outputs = write_month(month_tables, root, "green", JAN_2025)
    assert outputs["quarantine"] == f"s3://{s3_bucket}/out/quarantine/service=green/year=2025/month=01/part-0.parquet"
    import s3fs

    filesystem = s3fs.S3FileSystem(client_kwargs={"endpoint_url": settings.s3_endpoint_url()})
    write_month(month_tables, root, "green", JAN_2025)  # a rerun: the first version is collected
    version = committed_files(root, "green", JAN_2025)["trips"].split("/")[-2]
    versions = f"{s3_bucket}/out/_versions/service=green/year=2025/month=01"
    assert filesystem.find(f"{s3_bucket}/out") == [
        f"{versions}/{version}/quarantine.pq",
        f"{versions}/{version}/trips.pq",
        f"{versions}/commit.json",
        f"{s3_bucket}/out/quarantine/service=green/year=2025/month=01/part-0.parquet",
        f"{s3_bucket}/out/trips/service=green/year=2025/month=01/part-0.parquet",
    ]
    with filesystem.open(outputs["quarantine"]) as handle:
        assert pq.read_table(handle).column("reason").to_pylist() == ["non_positive_total"]
    assert read_month(root, "green", JAN_2025)["trips"].num_rows == 2


def test_publishing_a_version_already_published_leaves_no_temporary_link(tmp_path, month_tables):
    from tasks.commit import _replace_with_copy

    write_month(month_tables, str(tmp_path), "yellow", JAN_2025)
    committed = committed_files(str(tmp_path), "yellow", JAN_2025)["trips"]
    plain = f"{tmp_path}/trips/service=yellow/year=2025/month=01/part-0.parquet"
    _replace_with_copy(lake.filesystem_for(str(tmp_path)), committed, plain)  # as a writer giving way would
    assert sorted(p.name for p in (tmp_path / "_versions").rglob("*") if p.is_file()) == [
        "commit.json",
        "quarantine.pq",
        "trips.pq",
    ]


def test_read_month_reads_the_record_again_when_a_newer_commit_collected_the_files(tmp_path, month_tables, monkeypatch):
    root = str(tmp_path)
    write_month(month_tables, root, "yellow", JAN_2025)
    stale = committed_files(root, "yellow", JAN_2025)
    write_month({**month_tables, "trips": month_tables["trips"].slice(0, 1)}, root, "yellow", JAN_2025)
    answers = [stale]  # the record as it was just before the second commit, then the record as it is
    monkeypatch.setattr(lake, "committed_files", lambda *args: answers.pop() if answers else committed_files(*args))
    assert read_month(root, "yellow", JAN_2025)["trips"].num_rows == 1
    assert answers == []


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_the_step_tasks_compose_a_month_in_a_flow_of_ones_own(tmp_path):
    """Each step's task, made from its plain function, runs in a flow as its own task run, and the month it writes is
    the one the plain functions write."""
    from prefect import flow

    from tasks.extract import extract
    from tasks.load import load
    from tasks.pipeline import read_month_in_memory
    from tasks.schema import normalize
    from tasks.transform import transform
    from tasks.validate import validate
    from tasks.zones import load_zones

    source = str(settings.SAMPLE_DIR / "green_tripdata_2025-01.parquet")

    @flow
    def month_step_by_step(root: str) -> dict[str, str]:
        zones = load_zones()
        table = normalize(extract(source), "green", source)
        clean, quarantine = validate(table, JAN_2025, zones.known_location_ids(), "polars")
        return load(transform(clean, zones.table, "polars"), quarantine, root, "green", JAN_2025)

    month_step_by_step(str(tmp_path / "steps"))
    _, trips, quarantine = read_month_in_memory(source, "green", JAN_2025, load_zones.fn(), "polars")
    write_month({"trips": trips, "quarantine": quarantine}, str(tmp_path / "plain"), "green", JAN_2025)
    step_by_step, plain = (read_month(str(tmp_path / name), "green", JAN_2025) for name in ("steps", "plain"))
    assert set(step_by_step) == {"trips", "quarantine"} and step_by_step["trips"].num_rows > 0
    for dataset, table in plain.items():
        assert step_by_step[dataset].equals(table), dataset
