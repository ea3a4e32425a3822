"""Each lesson on tiny data, asserting the Prefect behaviour it teaches."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from prefect import flow
from prefect.utilities.annotations import opaque, quote

from data.generate import write_month
from flows import caching, compression, disk_io
from flows.quote import describe, load_sample
from tasks import settings
from tasks.months import Month
from tasks.pipeline import month as pipeline
from tasks.pipeline.zones import load_zone_table
from tests.runs import task_runs_of

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]
TINY_ROWS = 3_000


@pytest.fixture(scope="module")
def tiny_months(tmp_path_factory) -> tuple[str, list[str]]:
    folder = tmp_path_factory.mktemp("tiny")
    months = ["2025-01", "2025-02"]
    for month in months:
        write_month("yellow", Month.parse(month), TINY_ROWS, folder)
    return str(folder / "{service}_tripdata_{month}.parquet"), months


def task_inputs_by_name(state) -> dict[str, dict]:
    return {run.name: run.task_inputs for run in task_runs_of(state)}


def test_quote_drops_the_dependency_edge_and_opaque_keeps_it():
    @flow
    def edges():
        upstream = load_sample.submit()
        return {
            "plain": describe.with_options(name="plain").submit(upstream).result(),
            "opaque": describe.with_options(name="opaque").submit(opaque(upstream)).result(),
            "quote": describe.with_options(name="quoted").submit(quote(upstream)).result(),
        }

    state = edges(return_state=True)
    received = state.result()
    assert received["plain"] == received["opaque"] == "DataFrame"
    assert received["quote"].endswith("Future")
    inputs = {name.split("-")[0]: value for name, value in task_inputs_by_name(state).items()}
    assert len(inputs["plain"]["value"]) == 1
    assert len(inputs["opaque"]["value"]) == 1
    assert inputs["quoted"]["value"] == []


def test_the_caching_command_prints_cold_cached_changed_and_refreshed_months(capsys):
    """`python -m flows.caching`, the README's command: a cold run computes each month, a rerun finds both cached,
    a touched 2025-02 file is computed again alone, and `refresh_cache` computes both."""
    caching.main([])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line[:40].strip() for line in lines] == [
        "cold run",
        "rerun, nothing changed",
        "rerun after the 2025-02 file changed",
        "rerun with refresh_cache=True",
    ]
    assert [line[40:].strip() for line in lines] == [
        "2025-01 Completed, 2025-02 Completed",
        "2025-01 Cached, 2025-02 Cached",
        "2025-01 Cached, 2025-02 Completed",
        "2025-01 Completed, 2025-02 Completed",
    ]


def test_cache_key_covers_rules_code_and_zone_table(tiny_months, tmp_path, monkeypatch):
    source, _ = tiny_months
    output = str(tmp_path / "out")

    def state(**options) -> str:
        [run] = caching.cached_etl(source=source, months=["2025-01"], output=output, **options)
        return run["state"]

    assert state() == "Completed"
    assert state() == "Cached"
    monkeypatch.setattr(settings, "MAX_TRIP_MILES", settings.MAX_TRIP_MILES - 1)  # a rule's limit changes
    assert state() == "Completed"
    assert state() == "Cached"
    monkeypatch.setattr(pipeline, "code_version", lambda: "an edited validation rule")  # pipeline code changes
    assert state() == "Completed"
    assert state() == "Cached"
    zones = load_zone_table().table
    boroughs, moved = zones.column("borough").to_pylist(), zones.column("location_id").to_pylist().index(2)
    boroughs[moved] = "Bronx" if boroughs[moved] != "Bronx" else "Brooklyn"
    zone_csv = tmp_path / "zones.csv"
    pa_csv.write_csv(zones.set_column(1, "borough", pa.array(boroughs)), zone_csv)  # one zone moved borough
    assert state(zones=str(zone_csv)) == "Completed"
    assert state(zones=str(zone_csv)) == "Cached"


def test_compressed_results_are_smaller_and_round_trip():
    state = compression.compression_lesson(rows=2_000, return_state=True)
    measured, run_id = state.result(), state.state_details.flow_run_id
    pickle_bytes = measured["pickle"]["bytes_on_disk"]
    for label, row in measured.items():
        if label != "pickle":
            assert row["bytes_on_disk"] < pickle_bytes, label
    frame = load_sample.fn().head(2_000)
    for label in measured:
        stored = compression.read_stored_result(compression.storage_key(label, str(run_id)))
        pd.testing.assert_frame_equal(stored, frame)


def test_summarize_is_keyed_by_rows_not_by_hashing_the_frame():
    """Its cache key leaves the frame out: an unhashable frame still caches, and `rows` alone tells runs apart."""
    frame = pd.DataFrame({"total_amount": [1.0, 2.0], "opaque": [object(), object()]})  # no stable hash exists

    @flow
    def summarize_twice() -> list[str]:
        first = compression.summarize(frame, 2, return_state=True)
        again = compression.summarize(frame.head(1), 2, return_state=True)  # same rows: the same key
        other = compression.summarize(frame.head(1), 1, return_state=True)
        return [state.name for state in (first, again, other)]

    assert summarize_twice() == ["Completed", "Cached", "Completed"]


def test_disk_io_variants_compute_the_same_report(tiny_months, tmp_path):
    source, months = tiny_months
    in_memory = disk_io.months_in_memory(months=months, source=source)
    via_paths = disk_io.months_via_paths(months=months, source=source, output=str(tmp_path))
    assert in_memory == via_paths
    assert sum(row["trips"] for row in via_paths) > 0.9 * TINY_ROWS * len(months)
    assert {row["month"] for row in via_paths} == set(months)


def test_parquet_serializer_round_trips_exactly():
    from tasks.serializers import ParquetSerializer

    frame = pd.DataFrame(
        {
            "code": pd.array([1, None, 3], dtype="Int32"),
            "amount": [1.5, float("nan"), -2.0],
            "flag": pd.array(["Y", None, "N"], dtype="string"),
            "at": pd.to_datetime(["2025-01-01 08:00", None, "2025-01-31 23:59"]).as_unit("us"),
        }
    )
    serializer = ParquetSerializer()
    restored = serializer.loads(serializer.dumps(frame))
    pd.testing.assert_frame_equal(restored, frame)
    assert restored.dtypes.equals(frame.dtypes)
    table = pa.table({"x": pa.array([1, None], pa.int8())})
    assert serializer.loads(serializer.dumps(table)).equals(table)
    with pytest.raises(TypeError, match="not dict"):
        serializer.dumps({"not": "a frame"})
