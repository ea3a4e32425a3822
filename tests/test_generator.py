"""The synthetic generator: the official schema, determinism, and each real-file quirk at a realistic rate."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from data.generate import MonthFile, is_present, main, write_month, write_months, write_sample
from data.synthetic import generate_trips, schema_for
from tasks import settings
from tasks.months import Month
from tasks.pipeline.zones import JFK, LAGUARDIA

FEB_2025 = Month(2025, 2)


@pytest.fixture(scope="module")
def yellow() -> pa.Table:
    return generate_trips("yellow", FEB_2025, 100_000, np.random.default_rng(1))


@pytest.fixture(scope="module")
def green() -> pa.Table:
    return generate_trips("green", FEB_2025, 50_000, np.random.default_rng(1))


def share(mask) -> float:
    return pc.sum(pc.cast(pc.fill_null(mask, False), pa.int64())).as_py() / len(mask)


def test_official_column_names_types_and_order(yellow, green):
    assert yellow.schema.names[:3] == ["VendorID", "tpep_pickup_datetime", "tpep_dropoff_datetime"]
    assert yellow.schema.field("Airport_fee").type == pa.float64()
    assert yellow.schema.field("VendorID").type == pa.int32()
    assert yellow.schema.field("RatecodeID").type == pa.int64()
    assert yellow.schema.field("store_and_fwd_flag").type == pa.large_string()
    assert "ehail_fee" in green.schema.names and "trip_type" in green.schema.names
    assert all(field.nullable for field in yellow.schema)
    assert "cbd_congestion_fee" not in schema_for("yellow", Month(2024, 12)).names


def test_deterministic_for_a_seed(tmp_path):
    first = write_month("green", FEB_2025, 1_000, tmp_path / "a", seed=7)
    second = write_month("green", FEB_2025, 1_000, tmp_path / "b", seed=7)
    other = write_month("green", FEB_2025, 1_000, tmp_path / "c", seed=8)
    assert pq.read_table(first).equals(pq.read_table(second))
    assert not pq.read_table(first).equals(pq.read_table(other))


def test_committed_sample_is_what_the_generator_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "SAMPLE_DIR", tmp_path)
    for path in write_sample():
        assert pq.read_table(path).equals(pq.read_table(settings.PROJECT_ROOT / "data" / "sample" / path.name)), (
            path.name
        )
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 5_000_000


def test_null_block(yellow, green):
    null_rate = share(pc.is_null(yellow["passenger_count"]))
    assert 0.05 <= null_rate <= 0.20
    null_rows = yellow.filter(pc.is_null(yellow["passenger_count"]))
    for column in ("RatecodeID", "store_and_fwd_flag", "congestion_surcharge", "Airport_fee"):
        assert null_rows[column].null_count == null_rows.num_rows
    assert set(null_rows["payment_type"].to_pylist()) == {0}
    assert green.filter(pc.is_null(green["passenger_count"]))["payment_type"].null_count > 0


def test_tips_only_on_card_payments(yellow):
    tipped = yellow.filter(pc.greater(yellow["tip_amount"], 0))
    assert tipped.num_rows > 0.5 * yellow.num_rows
    assert set(tipped["payment_type"].to_pylist()) == {1}


def test_quirks_are_present(yellow):
    pickup = yellow["tpep_pickup_datetime"]
    outside = pc.or_(pc.less(pickup, pa.scalar(FEB_2025.start)), pc.greater_equal(pickup, pa.scalar(FEB_2025.end)))
    assert 0 < share(outside) < 0.01
    assert 0 < share(pc.less(yellow["total_amount"], 0)) < 0.05
    assert 0 < share(pc.equal(yellow["total_amount"], 0)) < 0.01
    assert 0 < share(pc.equal(yellow["RatecodeID"], 99)) < 0.01
    assert 0 < share(pc.equal(yellow["VendorID"], 7)) < 0.02
    assert 0 < share(pc.equal(yellow["trip_distance"], 0)) < 0.05


def test_airports_fees_and_fares(yellow):
    at_airport = pc.is_in(yellow["PULocationID"], pa.array([JFK, LAGUARDIA], pa.int32()))
    assert 0.02 < share(at_airport) < 0.15
    airport = yellow.filter(pc.and_(at_airport, pc.greater(yellow["total_amount"], 0)))
    fees = airport["Airport_fee"].drop_null().to_pylist()
    assert set(fees) == {1.75}
    jfk_flat = yellow.filter(pc.and_(pc.equal(yellow["RatecodeID"], 2), pc.greater(yellow["total_amount"], 0)))
    assert set(jfk_flat["fare_amount"].to_pylist()) == {70.0}
    metered = yellow.filter(pc.and_(pc.equal(yellow["RatecodeID"], 1), pc.greater(yellow["fare_amount"], 0)))
    correlation = np.corrcoef(metered["trip_distance"].to_numpy(), metered["fare_amount"].to_numpy())[0, 1]
    assert correlation > 0.9


def test_daily_rhythm(yellow):
    hours = pc.hour(yellow["tpep_pickup_datetime"]).to_numpy()
    assert (hours == 18).sum() > 4 * (hours == 4).sum()


def test_total_is_the_sum_of_its_parts(yellow):
    parts = [
        "fare_amount",
        "extra",
        "mta_tax",
        "tip_amount",
        "tolls_amount",
        "improvement_surcharge",
        "congestion_surcharge",
        "Airport_fee",
        "cbd_congestion_fee",
    ]
    summed = sum(np.nan_to_num(yellow[c].to_numpy(zero_copy_only=False)) for c in parts)
    assert np.allclose(summed, yellow["total_amount"].to_numpy(), atol=0.011)


# The year CLI (`python -m data.generate --year`): small months, so the speed goal stays in the report, not here.
def run_cli(*args: str) -> None:
    assert main([*args, "--rows", "1000"]) == 0


def test_a_year_is_twelve_files_named_per_month_each_with_its_rows(tmp_path):
    run_cli("--year", "2024", "--out", str(tmp_path))
    expected = [f"yellow_tripdata_2024-{number:02d}.parquet" for number in range(1, 13)]
    assert sorted(path.name for path in tmp_path.iterdir()) == expected
    for number, name in enumerate(expected, start=1):
        month = Month(2024, number)
        table = pq.read_table(tmp_path / name)
        assert table.num_rows == 1_000
        assert table.schema.equals(schema_for("yellow", month))
        pickup = table["tpep_pickup_datetime"]
        inside = pc.and_(pc.greater_equal(pickup, pa.scalar(month.start)), pc.less(pickup, pa.scalar(month.end)))
        assert share(inside) > 0.99, name


def test_months_are_the_same_on_one_process_or_two(tmp_path):
    run_cli(
        "--month", "2024-01", "--month", "2024-02", "--service", "green", "--jobs", "2", "--out", str(tmp_path / "a")
    )
    run_cli(
        "--month", "2024-02", "--month", "2024-01", "--service", "green", "--jobs", "1", "--out", str(tmp_path / "b")
    )
    for month in ("2024-01", "2024-02"):
        name = f"green_tripdata_{month}.parquet"
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name)), name
        direct = write_month("green", Month.parse(month), 1_000, tmp_path / "direct")
        assert pq.read_table(direct).equals(pq.read_table(tmp_path / "a" / name)), name
    assert not pq.read_table(tmp_path / "a" / "green_tripdata_2024-01.parquet").equals(
        pq.read_table(tmp_path / "a" / "green_tripdata_2024-02.parquet")
    )


def test_months_present_with_the_right_rows_are_kept_unless_forced(tmp_path, capsys):
    january, february = tmp_path / "yellow_tripdata_2024-01.parquet", tmp_path / "yellow_tripdata_2024-02.parquet"
    run_cli("--month", "2024-01", "--month", "2024-02", "--out", str(tmp_path))
    first_inodes = january.stat().st_ino, february.stat().st_ino
    write_month("yellow", Month(2024, 2), 999, tmp_path)  # February now has the wrong row count
    capsys.readouterr()

    run_cli("--month", "2024-01", "--month", "2024-02", "--out", str(tmp_path))
    assert january.stat().st_ino == first_inodes[0]  # not rewritten: every write renames a new file into place
    assert pq.read_metadata(february).num_rows == 1_000
    report = capsys.readouterr().out
    assert "2024-01.parquet  1,000 rows" in report and "kept" in report.split("2024-01")[1].splitlines()[0]
    assert "written" in report.split("2024-02")[1].splitlines()[0]

    run_cli("--month", "2024-01", "--out", str(tmp_path), "--force")
    assert january.stat().st_ino != first_inodes[0]
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_damaged_file_is_not_taken_as_present(tmp_path):
    target = MonthFile("yellow", Month(2024, 3), 1_000, tmp_path)
    target.path.write_bytes(b"PAR1 cut short")
    assert not is_present(target)
    assert write_months([target], jobs=1) == [target]
    assert is_present(target)
    # Same rows, wrong schema: a 2025 file (it has cbd_congestion_fee) under a 2024 name is written again.
    write_month("yellow", Month(2025, 3), 1_000, tmp_path).replace(target.path)
    assert not is_present(target)
