"""The daily pickup-zone mart: one row per service, pickup day and pickup zone, read from the lake's Delta tables.

The same table is computed by two engines, held to the same result by `tests/test_mart.py`: polars lazy (one
machine, every core) and dask.dataframe (a Dask cluster, through `prefect_dask.get_dask_client` in
`flows/mart.py`). Both read one snapshot of the lake (`tasks.lake.lake_snapshot`): the data files each month's
Delta log names, trips and quarantine of the same run, never the files of replaced versions that sit beside them
until `vacuum` (which is why a plain `scan_parquet` over the folders would be wrong).

Keys: `service`, `pickup_date` (the calendar day of the pickup, New York local time as the lake stores it),
`pu_location_id` (TLC's pickup zone id), and the zone's names `pu_borough` and `pu_zone` as the ETL wrote them on
clean trips (null for a zone no clean trip in the lake has, such as TLC's unknown zone 264).

Measures of a cell (clean = a row of `trips/`, quarantined = a row of `quarantine/`):

- `trips`: the number of clean trips.
- `revenue`: the sum of `total_amount` of the clean trips, in dollars (everything the rider paid, tips included;
  positive on every clean trip). 0.0 in a cell with quarantined rows only.
- `mean_tip_fraction`: the mean over clean trips of `tip_amount / total_amount` (the `tip_fraction` column). TLC
  records card tips only, so cash trips count as 0. Null when the cell has no clean trip.
- `mean_speed_mph`: the mean over clean trips of each trip's average speed (`avg_speed_mph`: distance / duration),
  not total distance over total time. Null when the cell has no clean trip.
- `quarantined`: the number of quarantined rows whose pickup time and pickup zone are both present and whose
  pickup day lies in the month of the partition the row was filed under. Rows without a pickup time or zone
  cannot be placed in a cell; rows with a pickup outside their file's month (TLC files carry stray days and
  years, such as 2009-01-01 or the previous month's last days) would otherwise land on days owned by another
  month's file. Both kinds are counted in no cell.
- `quarantine_rate`: `quarantined / (trips + quarantined)`, in [0, 1]; 1.0 in a cell with quarantined rows only.

So `sum(trips)` equals the lake's clean rows, and `sum(quarantined)` equals its quarantined rows that have a
pickup time and zone inside their month.
"""

from __future__ import annotations

import uuid

import dask.dataframe as dd
import fsspec
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.lake import MonthFiles, lake_snapshot
from tasks.settings import PARQUET_COMPRESSION, polars_storage_options, storage_options

KEYS = ("service", "pickup_date", "pu_location_id")
MART_SCHEMA = pa.schema(
    [
        ("service", pa.string()),
        ("pickup_date", pa.date32()),
        ("pu_location_id", pa.int32()),
        ("pu_borough", pa.string()),
        ("pu_zone", pa.string()),
        ("trips", pa.int64()),
        ("revenue", pa.float64()),
        ("mean_tip_fraction", pa.float64()),
        ("mean_speed_mph", pa.float64()),
        ("quarantined", pa.int64()),
        ("quarantine_rate", pa.float64()),
    ]
)
TRIP_COLUMNS = ["pickup_date", "pu_location_id", "pu_borough", "pu_zone", "total_amount", "tip_fraction"]
TRIP_COLUMNS += ["avg_speed_mph"]
QUARANTINE_COLUMNS = ["pickup_datetime", "pu_location_id"]


class EmptyLakeError(FileNotFoundError):
    """No published month under the lake root: there is nothing to build a mart from."""


def lake_inputs(root: str, year: int | None = None) -> list[MonthFiles]:
    """Every month of the lake (optionally of one year), its trips and quarantine files from one run each
    (`tasks.lake.lake_snapshot`); raises `EmptyLakeError` when the lake has no trips at all."""
    months = lake_snapshot(root, year)
    if not months:
        scope = f" for {year}" if year is not None else ""
        raise EmptyLakeError(f"no trips{scope} under {root} (expected the Delta table {root.rstrip('/')}/trips)")
    return months


def _file_partitions(months: list[MonthFiles], dataset: str) -> list[tuple[str, str, int, int]]:
    """(file, service, year, month) of every file of `dataset`: Delta keeps partition values out of the files."""
    return [(f, m.service, m.month.year, m.month.month) for m in months for f in m.files[dataset]]


# ---- polars lazy ---------------------------------------------------------------------------------------------


def _scan_with_partitions(root: str, files: list[tuple[str, str, int, int]]) -> pl.LazyFrame:
    """One lazy scan of the snapshot's files, each row given its file's `service`, `year` and `month`."""
    partitions = pl.LazyFrame(
        {"_file": [f[0] for f in files], "service": [f[1] for f in files]}
        | {"year": [f[2] for f in files], "month": [f[3] for f in files]},
        schema={"_file": pl.String, "service": pl.String, "year": pl.Int32, "month": pl.Int32},
    )
    scan = pl.scan_parquet(
        [f[0] for f in files], storage_options=polars_storage_options(root) or None, include_file_paths="_file"
    )
    return scan.join(partitions, on="_file", how="left").drop("_file")


def mart_plan(trips: pl.LazyFrame, quarantine: pl.LazyFrame) -> pl.LazyFrame:
    """The mart as one lazy plan over the lake's trips and quarantine (each with the hive `service`, `year`,
    `month` columns); sorted by the keys."""
    keys = list(KEYS)
    clean = trips.group_by(keys).agg(
        trips=pl.len().cast(pl.Int64),
        revenue=pl.col("total_amount").sum(),
        mean_tip_fraction=pl.col("tip_fraction").mean(),
        mean_speed_mph=pl.col("avg_speed_mph").mean(),
    )
    pickup = pl.col("pickup_datetime")
    rejected = (
        quarantine.filter(
            pickup.is_not_null(),
            pl.col("pu_location_id").is_not_null(),
            pickup.dt.year() == pl.col("year"),
            pickup.dt.month() == pl.col("month"),
        )
        .with_columns(pickup_date=pickup.dt.date())
        .group_by(keys)
        .agg(quarantined=pl.len().cast(pl.Int64))
    )
    names = trips.group_by("pu_location_id").agg(pl.col("pu_borough").max(), pl.col("pu_zone").max())
    cells = clean.join(rejected, on=keys, how="full", coalesce=True).join(names, on="pu_location_id", how="left")
    cells = cells.with_columns(
        pl.col("trips", "quarantined").fill_null(0), pl.col("revenue").fill_null(0.0)
    ).with_columns(quarantine_rate=pl.col("quarantined") / (pl.col("trips") + pl.col("quarantined")))
    return cells.select(MART_SCHEMA.names).sort(keys)


def polars_mart(root: str, year: int | None = None) -> pa.Table:
    """The mart computed with polars lazy on this machine."""
    months = lake_inputs(root, year)
    trips = _scan_with_partitions(root, _file_partitions(months, "trips")).select("service", *TRIP_COLUMNS)
    if quarantine_files := _file_partitions(months, "quarantine"):
        quarantine = _scan_with_partitions(root, quarantine_files)
        quarantine = quarantine.select("service", "year", "month", *QUARANTINE_COLUMNS)
    else:
        quarantine = pl.LazyFrame(
            schema={"service": pl.String, "year": pl.Int64, "month": pl.Int64}
            | {"pickup_datetime": pl.Datetime("us"), "pu_location_id": pl.Int32}
        )
    return as_mart_table(mart_plan(trips, quarantine).collect().to_arrow())


# ---- dask.dataframe --------------------------------------------------------------------------------------------


def dask_mart(root: str, year: int | None = None) -> pa.Table:
    """The mart computed with dask.dataframe on the current Dask client's cluster (or Dask's local scheduler).

    The reductions run on the workers; only the per-cell results (a few hundred thousand rows for a year) come
    back, and the final join of clean and quarantined cells is done in pandas here.
    """
    months = lake_inputs(root, year)
    options = storage_options(root)
    keys = list(KEYS)
    trips = dd.from_map(read_piece, _file_partitions(months, "trips"), names=TRIP_COLUMNS, options=options)
    trips = trips.assign(service=trips["service"].astype(str))
    clean = trips.groupby(keys, observed=True).agg(
        trips=("total_amount", "size"),
        revenue=("total_amount", "sum"),
        mean_tip_fraction=("tip_fraction", "mean"),
        mean_speed_mph=("avg_speed_mph", "mean"),
    )
    names = trips[["pu_location_id", "pu_borough", "pu_zone"]].drop_duplicates(split_out=1)
    lazy = [clean, names]
    if quarantine_files := _file_partitions(months, "quarantine"):
        quarantine = dd.from_map(read_piece, quarantine_files, names=QUARANTINE_COLUMNS, options=options)
        placed = quarantine.map_partitions(placed_quarantine, meta=PLACED_META)
        lazy.append(placed.groupby(keys).size().rename("quarantined"))
    computed = dd.compute(*lazy)
    clean_cells, zone_names = computed[0].reset_index(), computed[1].groupby("pu_location_id").max().reset_index()
    rejected = computed[2].reset_index() if quarantine_files else PLACED_META.assign(quarantined=0)
    clean_cells["pickup_date"] = clean_cells["pickup_date"].astype("datetime64[s]")
    rejected["pickup_date"] = rejected["pickup_date"].astype("datetime64[s]")
    cells = clean_cells.merge(rejected, on=keys, how="outer").merge(zone_names, on="pu_location_id", how="left")
    cells = cells.fillna({"trips": 0, "revenue": 0.0, "quarantined": 0})
    cells["quarantine_rate"] = cells["quarantined"] / (cells["trips"] + cells["quarantined"])
    return as_mart_table(pa.Table.from_pandas(cells, preserve_index=False))


def read_piece(piece: tuple[str, str, int, int], names: list[str], options: dict) -> pd.DataFrame:
    """One data file of the snapshot as pandas, with its partition values as columns (runs on a Dask worker)."""
    path, service, year, month = piece
    filesystem, stripped = fsspec.core.url_to_fs(path, **options)
    with filesystem.open(stripped, "rb") as handle:
        frame = pq.read_table(handle, columns=names).to_pandas()
    return frame.assign(service=service, year=year, month=month)


PLACED_META = pd.DataFrame(
    {
        "service": pd.Series(dtype=str),
        "pickup_date": pd.Series(dtype="datetime64[us]"),
        "pu_location_id": pd.Series(dtype="int32"),
    }
)


def placed_quarantine(frame: pd.DataFrame) -> pd.DataFrame:
    """The quarantined rows that belong in a cell (see the module docstring), as `KEYS` columns."""
    pickup = frame["pickup_datetime"]
    inside = (
        pickup.notna()
        & frame["pu_location_id"].notna()
        & (pickup.dt.year == frame["year"].astype("int64"))
        & (pickup.dt.month == frame["month"].astype("int64"))
    )
    placed = frame[inside]
    return pd.DataFrame(
        {
            "service": placed["service"].astype(str),
            "pickup_date": placed["pickup_datetime"].dt.floor("D"),
            "pu_location_id": placed["pu_location_id"].astype("int32"),
        }
    )


# ---- the result --------------------------------------------------------------------------------------------


def as_mart_table(table: pa.Table) -> pa.Table:
    """`table` in `MART_SCHEMA`'s column order and types, sorted by the keys: one form for both engines."""
    table = table.select(MART_SCHEMA.names).cast(MART_SCHEMA)
    return table.sort_by([(key, "ascending") for key in KEYS])


def mart_path(root: str, name: str, year: int | None = None) -> str:
    """Where a mart is published: `<root>/marts/<name>.parquet`, or `<name>-<year>.parquet` for one year."""
    suffix = f"-{year:04d}" if year is not None else ""
    return f"{root.rstrip('/')}/marts/{name}{suffix}.parquet"


def write_mart(table: pa.Table, destination: str) -> str:
    """Publish the mart at `destination` (local or `s3://`) whole or not at all: staged under a hidden name, then
    moved into place, as the lake's months are."""
    filesystem, path = fsspec.core.url_to_fs(destination, **storage_options(destination))
    folder, _, file_name = path.rpartition("/")
    filesystem.makedirs(folder, exist_ok=True)
    staged = f"{folder}/.{file_name}.{uuid.uuid4().hex}.tmp"
    try:
        with filesystem.open(staged, "wb") as handle:
            pq.write_table(table, handle, compression=PARQUET_COMPRESSION)
    except BaseException:
        if filesystem.exists(staged):
            filesystem.rm(staged)
        raise
    filesystem.mv(staged, path)
    return destination


def read_mart(uri: str) -> pa.Table:
    """A published mart, back in `MART_SCHEMA`."""
    filesystem, path = fsspec.core.url_to_fs(uri, **storage_options(uri))
    with filesystem.open(path, "rb") as handle:
        return as_mart_table(pq.read_table(handle))
