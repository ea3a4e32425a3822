"""The rules and transforms in pandas: the classic choice, single-threaded, with nullable integer dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from tasks.months import Month
from tasks.pipeline.rules import MAX_TRIP_MICROSECONDS, MICROSECONDS_PER_HOUR
from tasks.schema import CANONICAL_SCHEMA, NEW_YORK, QUARANTINE_SCHEMA, REQUIRED_COLUMNS, TRIPS_SCHEMA, normalize_table
from tasks.settings import MAX_AVG_SPEED_MPH, MAX_TRIP_MILES

normalize = normalize_table  # pandas reads what pyarrow normalized (`tasks.schema.ColumnMapping`)

_NULLABLE = {pa.int8(): pd.Int8Dtype(), pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas keeping integer codes as nullable integers (not floats with NaN)."""
    return table.to_pandas(types_mapper=_NULLABLE.get)


def to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def _instants_us(wall: pd.Series, earliest: bool) -> np.ndarray:
    """Naive New York wall times as real instants (UTC microseconds; see `tasks.pipeline.rules.DURATION_ON_INSTANTS`):
    a time in the skipped spring hour is shifted an hour forward (the pre-change offset), a time in the repeated
    autumn hour takes its first reading when `earliest`, else its second."""
    local = wall.dt.tz_localize(NEW_YORK, ambiguous=np.full(len(wall), earliest), nonexistent=pd.Timedelta(hours=1))
    return local.dt.tz_convert(None).to_numpy("datetime64[us]")


def _duration_us(frame: pd.DataFrame) -> np.ndarray:
    """Trip duration in whole microseconds between real instants: the shortest positive one the wall times allow,
    else the one from the earliest readings (garbage where a time is null; `missing_value` catches those)."""
    pickups = [_instants_us(frame["pickup_datetime"], earliest) for earliest in (True, False)]
    dropoffs = [_instants_us(frame["dropoff_datetime"], earliest) for earliest in (True, False)]
    candidates = np.stack([(d - p).astype(np.int64) for d in dropoffs for p in pickups])
    none = np.iinfo(np.int64).max
    shortest_positive = np.where(candidates > 0, candidates, none).min(axis=0)
    return np.where(shortest_positive == none, candidates[0], shortest_positive)


def reasons(frame: pd.DataFrame, month: Month, known_zone_ids: list[int]) -> np.ndarray:
    """The first broken rule's reason code per row, or None (same order as `tasks.pipeline.rules.RULES`)."""
    duration = _duration_us(frame)
    pickup, distance = frame["pickup_datetime"], frame["trip_distance"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        speed = distance.to_numpy() / (duration / MICROSECONDS_PER_HOUR)
    checks = {
        "missing_value": frame[list(REQUIRED_COLUMNS)].isna().any(axis=1),
        "pickup_outside_month": (pickup < month.start) | (pickup >= month.end),
        "dropoff_not_after_pickup": duration <= 0,
        "implausible_duration": duration > MAX_TRIP_MICROSECONDS,
        "implausible_distance": (distance < 0) | (distance > MAX_TRIP_MILES),
        "implausible_speed": speed > MAX_AVG_SPEED_MPH,
        "non_positive_total": frame["total_amount"] <= 0,
        "unknown_zone": ~frame["pu_location_id"].isin(known_zone_ids) | ~frame["do_location_id"].isin(known_zone_ids),
    }
    conditions = [np.asarray(pd.Series(c).fillna(False), dtype=bool) for c in checks.values()]
    return np.select(conditions, list(checks), default=None)


def split_valid(table: pa.Table, month: Month, known_zone_ids: list[int]) -> tuple[pa.Table, pa.Table]:
    frame = to_frame(table)
    reason = reasons(frame, month, known_zone_ids)
    is_clean = pd.isna(reason)
    quarantine = frame[~is_clean].assign(reason=reason[~is_clean])
    return to_table(frame[is_clean], CANONICAL_SCHEMA), to_table(quarantine, QUARANTINE_SCHEMA)


def add_derived_columns(clean: pa.Table, zones: pa.Table) -> pa.Table:
    frame = to_frame(clean)
    duration = _duration_us(frame)
    pickup, total = frame["pickup_datetime"], frame["total_amount"]
    zone_frame = zones.to_pandas().set_index("location_id")
    frame["trip_duration_min"] = duration / 60_000_000
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        frame["avg_speed_mph"] = frame["trip_distance"].to_numpy() / (duration / MICROSECONDS_PER_HOUR)
        tip_fraction = np.where(total > 0, frame["tip_amount"].fillna(0) / total, 0.0)
        frame["tip_fraction"] = np.where(np.isfinite(tip_fraction), tip_fraction, np.nan)  # NaN is written as null
    frame["pickup_date"] = pickup.dt.normalize()
    frame["pickup_hour"] = pickup.dt.hour.astype("Int8")
    frame["pickup_weekday"] = (pickup.dt.day_of_week + 1).astype("Int8")
    for prefix, id_column in (("pu", "pu_location_id"), ("do", "do_location_id")):
        ids = frame[id_column].astype("Int64")
        frame[f"{prefix}_borough"] = ids.map(zone_frame["borough"])
        frame[f"{prefix}_zone"] = ids.map(zone_frame["zone"])
    as_timestamp = TRIPS_SCHEMA.set(
        TRIPS_SCHEMA.get_field_index("pickup_date"), pa.field("pickup_date", pa.timestamp("us"))
    )
    return to_table(frame, as_timestamp).cast(TRIPS_SCHEMA)
