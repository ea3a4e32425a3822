"""The daily pickup-zone mart: both engines give the same table, its totals reconcile with the lake, and the Dask
path runs as users run it (a `taxi-mart` flow on a DaskTaskRunner LocalCluster, against the test server)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from flows import mart as mart_flow
from tasks import settings
from tasks.lake import read_month, write_month
from tasks.mart import EmptyLakeError, dask_mart, polars_mart, read_mart
from tasks.months import Month
from tasks.pipeline.month import run_month
from tasks.pipeline.plan import sample_plan
from tasks.pipeline.zones import JFK, UNKNOWN_ZONE, load_zone_table
from tests.factories import trips as canonical_trips

MARCH = Month(2025, 3)
DAY = datetime(2025, 3, 10, 8, 0)


def trip(pickup: datetime | None, **changes) -> dict:
    """A trip of 3 miles in 15 minutes (12 mph) picked up at `pickup` in JFK, changed by `changes`."""
    dropoff = (pickup or DAY) + timedelta(minutes=15)
    return {"pickup_datetime": pickup, "dropoff_datetime": dropoff, "pu_location_id": JFK, **changes}


# A hand-made March: every way a quarantined row can or cannot be placed in a cell.
MARCH_ROWS = [
    trip(DAY, total_amount=25.0, tip_amount=4.0),  # clean
    trip(DAY + timedelta(hours=1), total_amount=50.0, tip_amount=0.0),  # clean
    trip(DAY + timedelta(hours=2), total_amount=0.0),  # quarantined, placed on (2025-03-10, JFK)
    trip(None),  # quarantined (no pickup time): in no cell
    trip(DAY, pu_location_id=None),  # quarantined (no pickup zone): in no cell
    trip(datetime(2025, 2, 27, 9, 0)),  # quarantined (pickup outside March): in no cell, not on Feb 27 either
    trip(DAY + timedelta(days=1), pu_location_id=UNKNOWN_ZONE),  # quarantined, placed on (2025-03-11, zone 264)
]


LakeMonths = list[tuple[str, Month]]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[str, LakeMonths]:
    """A lake written by the real pipeline from the committed sample plus the hand-made March: (root, its months).
    The first sample month is written twice, so the files of the replaced version sit beside the current ones (as
    they do until `vacuum`), and a stray parquet file lies in a month's folder: the mart must read neither."""
    folder = tmp_path_factory.mktemp("mart")
    root, zones = str(folder / "lake"), load_zone_table()
    march = folder / "yellow_tripdata_2025-03.parquet"
    yellow = canonical_trips(*MARCH_ROWS)
    pq.write_table(yellow.drop_columns([c for c in ("trip_type", "ehail_fee") if c in yellow.column_names]), march)
    run_month(str(march), "yellow", MARCH, root, zones, "polars", allow_high_quarantine=True)  # 5 of 7 rows
    months = [("yellow", MARCH)]
    for service in settings.SERVICES:
        for month, source in sample_plan(service, None):
            run_month(source, service, month, root, zones, "polars")
            months.append((service, month))
    service, month = months[1]
    run_month(sample_plan(service, None)[0][1], service, month, root, zones, "pandas")
    stray = Path(root) / "trips" / f"service={service}" / f"year={month.year}" / f"month={month.month}"
    shutil.copy(next(stray.glob("*.parquet")), stray / "part-stray.parquet")
    return root, months


def as_frame(table: pa.Table) -> pl.DataFrame:
    return pl.from_arrow(table)


def placed_quarantine_rows(table: pa.Table, year: int, month: int) -> int:
    """Independently of tasks/mart.py: quarantined rows with a pickup time and zone inside the month."""
    pickup = table.column("pickup_datetime")
    placed = pc.and_(
        pc.and_(pc.is_valid(pickup), pc.is_valid(table.column("pu_location_id"))),
        pc.and_(pc.equal(pc.year(pickup), year), pc.equal(pc.month(pickup), month)),
    )
    return pc.sum(pc.cast(pc.fill_null(placed, False), pa.int64())).as_py()


def test_both_engines_give_the_same_mart(lake):
    root, _ = lake
    by_polars, by_dask = as_frame(polars_mart(root)), as_frame(dask_mart(root))
    assert by_polars.height > 10_000
    assert_frame_equal(by_polars, by_dask, rel_tol=1e-9, abs_tol=1e-12)


def test_totals_reconcile_with_the_lake(lake):
    root, months = lake
    mart = as_frame(polars_mart(root))
    tables = [(read_month(root, service, month), month) for service, month in months]
    assert mart["trips"].sum() == sum(t["trips"].num_rows for t, _ in tables)
    assert mart["quarantined"].sum() == sum(placed_quarantine_rows(t["quarantine"], m.year, m.month) for t, m in tables)
    assert mart["revenue"].sum() == pytest.approx(sum(pc.sum(t["trips"]["total_amount"]).as_py() for t, _ in tables))
    assert mart.select(pl.struct("service", "pickup_date", "pu_location_id").is_unique().all()).item()


def test_each_measure_on_a_hand_made_day(lake):
    """Two clean trips (25 and 50 dollars, tips 4 and 0, 12 mph each) and one placed quarantined row."""
    root, _ = lake
    mart = as_frame(polars_mart(root, year=2025))
    march = mart.filter(pl.col("service") == "yellow", pl.col("pickup_date").dt.month() == 3)
    jfk = march.filter(pl.col("pickup_date") == DAY.date(), pl.col("pu_location_id") == JFK).row(0, named=True)
    assert (jfk["trips"], jfk["quarantined"], jfk["pu_zone"]) == (2, 1, "JFK Airport")
    assert jfk["revenue"] == pytest.approx(25.0 + 50.0)
    assert jfk["mean_tip_fraction"] == pytest.approx((4.0 / 25.0 + 0.0) / 2)
    assert jfk["mean_speed_mph"] == pytest.approx(12.0)
    assert jfk["quarantine_rate"] == pytest.approx(1 / 3)
    unknown = march.filter(pl.col("pu_location_id") == UNKNOWN_ZONE).row(0, named=True)
    assert (unknown["trips"], unknown["quarantined"], unknown["quarantine_rate"]) == (0, 1, 1.0)
    assert unknown["mean_speed_mph"] is None and unknown["pu_borough"] is None
    assert march["quarantined"].sum() == 2  # no pickup time, no zone, and February's day are in no cell


def test_a_lake_without_quarantine_and_an_absent_year(lake, tmp_path):
    root, _ = lake
    alone = tmp_path / "trips-only"
    trips = read_month(root, "yellow", MARCH)["trips"]
    write_month(
        str(alone), "yellow", MARCH, {"trips": trips, "quarantine": pa.table({"reason": pa.array([], pa.string())})}
    )
    by_polars, by_dask = as_frame(polars_mart(str(alone))), as_frame(dask_mart(str(alone)))
    assert_frame_equal(by_polars, by_dask, rel_tol=1e-9)
    assert by_polars["trips"].sum() == 2 and by_polars["quarantined"].sum() == 0
    with pytest.raises(EmptyLakeError, match="no trips for 2024"):
        polars_mart(root, year=2024)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_taxi_mart_flow_on_a_dask_local_cluster_and_with_polars(lake, tmp_path):
    """The flow's Dask path end to end: `get_dask_client()` only finds a client inside a task running on a Dask
    worker, so a completed run means the dataframe ran on the LocalCluster (of threads: worker processes would each
    import Prefect, tens of seconds on a loaded 2-core machine). The polars run publishes the same table."""
    root, _ = lake
    chart = tmp_path / "chart.png"
    on_dask = mart_flow.taxi_mart(lake=root, engine="dask", n_workers=2, year=2025, chart=str(chart), processes=False)
    assert on_dask["engine"] == "dask" and on_dask["mart"].endswith("marts/daily_pickup_zone-2025.parquet")
    published_by_dask = as_frame(read_mart(on_dask["mart"]))
    assert on_dask["trips"] == published_by_dask["trips"].sum() and on_dask["cells"] == published_by_dask.height
    assert on_dask["chart"] == str(chart) and chart.read_bytes()[:4] == b"\x89PNG"
    with_polars = mart_flow.taxi_mart(lake=root, engine="polars", year=2025)
    assert with_polars["mart"] == on_dask["mart"]
    assert_frame_equal(published_by_dask, as_frame(read_mart(with_polars["mart"])), rel_tol=1e-9, abs_tol=1e-12)


def test_chart_is_drawn_from_the_mart(lake, tmp_path):
    root, _ = lake
    chart = mart_flow.draw_chart(polars_mart(root), tmp_path / "chart.png", "test lake")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
    assert settings.MART_CHART.is_file(), "the committed chart: regenerate with `python -m flows.mart --chart`"


def test_help_runs_nothing(tmp_path, monkeypatch, capsys):
    sample_lake = tmp_path / "sample-lake"
    monkeypatch.setattr(settings, "SAMPLE_OUTPUT_ROOT", str(sample_lake))
    with pytest.raises(SystemExit) as exit_info:
        mart_flow.main(["--help"])
    assert exit_info.value.code == 0 and "--engine" in capsys.readouterr().out
    assert not sample_lake.exists()


def test_both_engines_read_a_lake_on_s3(lake, s3_bucket):
    """The lake on S3 (a moto server): each engine reaches it through the endpoint in the environment."""
    root, months = lake
    s3_root = f"s3://{s3_bucket}/lake"
    for service, month in months[:2]:
        write_month(s3_root, service, month, read_month(root, service, month))
    by_polars, by_dask = as_frame(polars_mart(s3_root)), as_frame(dask_mart(s3_root))
    assert_frame_equal(by_polars, by_dask, rel_tol=1e-9, abs_tol=1e-12)
    assert by_polars["trips"].sum() == sum(read_month(root, s, m)["trips"].num_rows for s, m in months[:2])
