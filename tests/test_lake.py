"""The lake's pieces on small tables: pairing, lineage, the run mark, options and redaction (fast, no Prefect)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from tasks import settings
from tasks.lake import lake_snapshot, month_lineage, open_table, read_month, table_uri, write_month, written_by_run
from tasks.lake import tables as lake_tables
from tasks.lake.tables import month_key, month_predicate
from tasks.months import Month
from tasks.redact import redact_url
from tests.test_lake_crash import JAN_2025, SERVICE, month_from, sources_of

FEB_2025 = Month(2025, 2)


def test_a_month_predicate_names_its_partition_only():
    assert month_predicate("yellow", Month(2024, 1)) == "service = 'yellow' AND year = 2024 AND month = 1"
    assert month_key("green", Month(2024, 11)) == "taxi/green/2024-11"


def test_writing_a_month_replaces_that_month_only(tmp_path):
    root = str(tmp_path)
    write_month(root, SERVICE, JAN_2025, month_from("A"))
    write_month(root, SERVICE, FEB_2025, month_from("B"))
    write_month(root, SERVICE, JAN_2025, month_from("C"))
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"C"}, "quarantine": {"C"}}
    assert sources_of(read_month(root, SERVICE, FEB_2025)) == {"trips": {"B"}, "quarantine": {"B"}}
    assert read_month(root, "green", JAN_2025) == {}
    trips = pl.scan_delta(table_uri(root, "trips")).collect()
    assert trips.group_by("month").len().sort("month").rows() == [(1, 7), (2, 5)]


def test_a_quarantine_commit_without_its_trips_is_not_read_beside_older_trips(tmp_path):
    """What a crash between the two commits leaves: quarantine of run B, trips of run A. Readers pair A with A."""
    root = str(tmp_path)
    write_month(root, SERVICE, JAN_2025, month_from("A"))
    lake_tables._commit_month(
        root, "quarantine", SERVICE, JAN_2025, month_from("B")["quarantine"], {}, {month_key(SERVICE, JAN_2025): 7}
    )
    assert set(open_table(root, "quarantine").to_pyarrow_table()["source"].to_pylist()) == {"B"}  # the latest
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"A"}, "quarantine": {"A"}}
    (month,) = lake_snapshot(root)
    read = {name: pl.read_parquet(files) for name, files in month.files.items()}
    assert {name: set(frame["source"]) for name, frame in read.items()} == {"trips": {"A"}, "quarantine": {"A"}}


def test_the_next_write_of_the_month_replaces_a_quarantine_commit_left_without_its_trips(tmp_path):
    """A plain reader of quarantine alone sees the orphan (its table's newest commit) until the month is written
    again; a write of another month leaves it, a write of the same month replaces it."""
    root = str(tmp_path)
    write_month(root, SERVICE, JAN_2025, month_from("A"))
    lake_tables._commit_month(
        root, "quarantine", SERVICE, JAN_2025, month_from("B")["quarantine"], {}, {month_key(SERVICE, JAN_2025): 7}
    )
    write_month(root, SERVICE, FEB_2025, month_from("C"))
    assert plain_sources(root, JAN_2025) == {"trips": {"A"}, "quarantine": {"B"}}
    write_month(root, SERVICE, JAN_2025, month_from("D"))
    assert plain_sources(root, JAN_2025) == {"trips": {"D"}, "quarantine": {"D"}}
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"D"}, "quarantine": {"D"}}


def plain_sources(root: str, month: Month) -> dict[str, set[str]]:
    """The month as a plain Delta reader of each table alone sees it."""
    return {
        name: set(pl.scan_delta(table_uri(root, name)).filter(pl.col("month") == month.month).collect()["source"])
        for name in ("trips", "quarantine")
    }


def test_lineage_says_who_wrote_the_month_from_what(tmp_path):
    root = str(tmp_path)
    assert month_lineage(root, SERVICE, JAN_2025) is None
    first = write_month(root, SERVICE, JAN_2025, month_from("A"), {"flow_run_id": "run-1", "source": "a.parquet"})
    write_month(root, SERVICE, FEB_2025, month_from("B"), {"flow_run_id": "run-2"})
    lineage = month_lineage(root, SERVICE, JAN_2025)
    assert (lineage["flow_run_id"], lineage["source"], lineage["month"]) == ("run-1", "a.parquet", "2025-01")
    assert lineage["quarantine_version"] == first.versions["quarantine"]
    assert lineage["table_version"] == first.versions["trips"] and lineage["write_id"] == first.write_id


def test_a_month_is_marked_as_its_runs_until_another_write_replaces_it(tmp_path):
    root = str(tmp_path)
    write_month(root, SERVICE, JAN_2025, month_from("A"), {"flow_run_id": "run-1"})
    assert written_by_run(root, SERVICE, JAN_2025, "run-1") == {
        "rows_clean": 3,
        "rows_quarantined": 1,
        "trips_version": 0,
        "quarantine_version": 0,
    }
    assert written_by_run(root, SERVICE, JAN_2025, "run-2") is None
    assert written_by_run(root, SERVICE, JAN_2025, None) is None
    write_month(root, SERVICE, JAN_2025, month_from("B"))  # outside a run: clears run-1's mark
    assert written_by_run(root, SERVICE, JAN_2025, "run-1") is None


def test_delta_options_for_s3_carry_the_endpoint_keys_and_conditional_put(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    options = settings.delta_storage_options("s3://bucket/lake")
    assert options["conditional_put"] == "etag" and options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert (options["AWS_ACCESS_KEY_ID"], options["AWS_SECRET_ACCESS_KEY"], options["AWS_ALLOW_HTTP"]) == (
        "key",
        "secret",
        "true",
    )
    assert settings.delta_storage_options("lake") is None


@pytest.mark.parametrize(
    "url, redacted",
    [
        ("/data/yellow.parquet", "/data/yellow.parquet"),
        ("s3://bucket/yellow.parquet", "s3://bucket/yellow.parquet"),
        ("https://user:pw@host/f.parquet", "https://<redacted>@host/f.parquet"),
        (
            "https://b.s3.amazonaws.com/f.parquet?X-Amz-Credential=AKIA&X-Amz-Signature=abc&x=1",
            "https://b.s3.amazonaws.com/f.parquet?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>&x=1",
        ),
    ],
)
def test_a_url_loses_its_credentials_and_keeps_the_rest(url, redacted):
    assert redact_url(url) == redacted


def test_a_table_written_from_a_parquet_file_streams_it(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "trips.parquet"
    pq.write_table(pa.concat_tables([month_from("A")["trips"]] * 4), path, row_group_size=3)
    write_month(
        str(tmp_path / "lake"), SERVICE, JAN_2025, {"trips": str(path), "quarantine": month_from("A")["quarantine"]}
    )
    assert read_month(str(tmp_path / "lake"), SERVICE, JAN_2025)["trips"].num_rows == 12
