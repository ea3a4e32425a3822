"""The rules and transforms in polars (the default engine: multi-threaded, and lean on memory)."""

from __future__ import annotations

import polars as pl

from tasks.months import Month
from tasks.pipeline.rules import MAX_TRIP_MICROSECONDS, MICROSECONDS_PER_HOUR
from tasks.schema import NEW_YORK, REQUIRED_COLUMNS
from tasks.settings import MAX_AVG_SPEED_MPH, MAX_TRIP_MILES

DURATION_US = "_trip_duration_us"  # a working column, dropped before a table leaves the engine
_duration_us = pl.col(DURATION_US)
_speed_mph = pl.col("trip_distance") / (_duration_us / MICROSECONDS_PER_HOUR)
READINGS = ("earliest", "latest")  # the two readings of a wall time in the repeated autumn hour
TIMES = ("pickup_datetime", "dropoff_datetime")


def hour_pairs(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Rows per (pickup hour, dropoff hour) of `frame`, its wall-clock times truncated to the hour: `pickup_hour`,
    `dropoff_hour`, `rows`.

    The whole-file facts a month needs before its rows go by (rows per pickup month, the distinct hours) both follow
    from it, and it is one group-by on one input, whose state is the distinct pairs (a few thousand in a month)
    whatever the rows. Several results of one scan (a `collect_all` of a group-by and a concatenation) would make
    polars' streaming engine hold the rows one branch has taken and another not yet: memory growing with the month.
    """
    pickup, dropoff = (pl.col(name).dt.truncate("1h") for name in TIMES)
    return frame.group_by(pickup.alias("pickup_hour"), dropoff.alias("dropoff_hour")).agg(rows=pl.len())


def distinct_hours(pairs: pl.DataFrame) -> pl.Series:
    """The distinct wall-clock hours of `hour_pairs`' table (a few hundred for a month), as the series `hour`."""
    hours = pl.concat([pairs.get_column(f"{time}_hour") for time in ("pickup", "dropoff")])
    return hours.drop_nulls().unique().sort().alias("hour")


def offsets_by_hour(hours: pl.Series) -> pl.DataFrame:
    """UTC offset (instant minus wall time, in microseconds) of every wall-clock hour in `hours`, per reading.

    See `tasks.pipeline.rules.DURATION_ON_INSTANTS`. New York's offset only changes on the hour, so localizing the few
    hundred distinct hours of a month and looking them up is exact, and far faster than polars'
    `replace_time_zone` on every row; it also lets a month stream, since only this small table must be known
    before the rows go by. polars can only null a time in the skipped spring hour; localizing the hour after it
    gives the offset in force before the change, the same as pandas' `nonexistent=1 hour`.
    """
    wall = pl.col("hour")

    def offset_us(reading: str) -> pl.Expr:
        def localize(times: pl.Expr) -> pl.Expr:
            return times.dt.replace_time_zone(NEW_YORK, ambiguous=reading, non_existent="null")

        instant = pl.coalesce(localize(wall), localize(wall + pl.duration(hours=1)))
        as_utc_wall = instant.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return (as_utc_wall - wall).dt.total_microseconds().alias(reading)

    return pl.DataFrame(hours.alias("hour")).with_columns(offset_us(reading) for reading in READINGS)


def _offset_of_hour(hour: pl.Expr, offsets: pl.DataFrame, reading: str) -> pl.Expr:
    """The `reading` offset of each `hour` from `offsets`, as a chain of comparisons with the hours where the
    offset changes (two or three in a month): an element-wise expression, so the month streams (a `replace_strict`
    lookup would make polars hold the whole column). Exact for every hour listed in `offsets`, which are all the
    hours of the frame."""
    changes = offsets.sort("hour").filter(pl.col(reading).ne_missing(pl.col(reading).shift(1)))
    starts, values = changes["hour"].to_list(), changes[reading].to_list()
    expression = pl.when(hour < starts[1]).then(values[0]) if len(starts) > 1 else None
    for start, value in zip(starts[2:], values[1:], strict=False):
        expression = expression.when(hour < start).then(value)
    return expression.otherwise(values[-1]) if expression is not None else pl.lit(values[-1])


def with_trip_duration(frame: pl.LazyFrame, offsets: pl.DataFrame) -> pl.LazyFrame:
    """`frame` plus the trip duration in microseconds between real instants: the shortest positive one the wall
    times allow, else (none positive) the one from the earliest readings. Null where a time is null.

    `offsets` is `offsets_by_hour` of (at least) every hour in `frame`."""
    wall_us = (pl.col("dropoff_datetime") - pl.col("pickup_datetime")).dt.total_microseconds()
    if offsets.select(pl.concat_list(READINGS).explode().n_unique()).item() <= 1:  # one offset (most months)
        return frame.with_columns(wall_us.alias(DURATION_US))
    lookups = [
        _offset_of_hour(pl.col(name).dt.truncate("1h"), offsets, r).alias(f"_{name}_{r}")
        for name in TIMES
        for r in READINGS
    ]
    candidates = [
        wall_us + pl.col(f"_dropoff_datetime_{d}") - pl.col(f"_pickup_datetime_{p}") for d in READINGS for p in READINGS
    ]
    shortest_positive = pl.min_horizontal(pl.when(c > 0).then(c) for c in candidates)
    return (
        frame.with_columns(lookups)
        .with_columns(pl.coalesce(shortest_positive, candidates[0]).alias(DURATION_US))
        .drop(lookup.meta.output_name() for lookup in lookups)
    )


def reason_expression(month: Month, known_zone_ids: list[int]) -> pl.Expr:
    """The first broken rule's reason code, or null for a clean row (same order as `tasks.pipeline.rules.RULES`)."""
    pickup, distance = pl.col("pickup_datetime"), pl.col("trip_distance")
    known = pl.Series(known_zone_ids, dtype=pl.Int32).implode()
    checks = [
        ("missing_value", pl.any_horizontal(pl.col(name).is_null() for name in REQUIRED_COLUMNS)),
        ("pickup_outside_month", (pickup < month.start) | (pickup >= month.end)),
        ("dropoff_not_after_pickup", _duration_us <= 0),
        ("implausible_duration", _duration_us > MAX_TRIP_MICROSECONDS),
        ("implausible_distance", (distance < 0) | (distance > MAX_TRIP_MILES)),
        ("implausible_speed", _speed_mph > MAX_AVG_SPEED_MPH),
        ("non_positive_total", pl.col("total_amount") <= 0),
        ("unknown_zone", ~pl.col("pu_location_id").is_in(known) | ~pl.col("do_location_id").is_in(known)),
    ]
    reason, *rest = checks
    expression = pl.when(reason[1]).then(pl.lit(reason[0]))
    for code, condition in rest:
        expression = expression.when(condition).then(pl.lit(code))
    return expression.otherwise(pl.lit(None, dtype=pl.String))


def flag_rows(frame: pl.LazyFrame, month: Month, known_zone_ids: list[int]) -> pl.LazyFrame:
    """`frame` (with its duration column) plus `reason`: the first broken rule, or null for a clean row."""
    return frame.with_columns(reason=reason_expression(month, known_zone_ids))


def _with_zone_names(frame: pl.LazyFrame, zones: pl.DataFrame) -> pl.LazyFrame:
    """Borough and zone of the pickup and dropoff location: left joins on the small zone table, in row order."""
    names = zones.unique("location_id", keep="first").lazy()
    for prefix in ("pu", "do"):
        id_column = f"{prefix}_location_id"
        renamed = names.select(
            pl.col("location_id").cast(pl.Int32).alias(id_column),
            pl.col("borough").alias(f"{prefix}_borough"),
            pl.col("zone").alias(f"{prefix}_zone"),
        )
        frame = frame.join(renamed, on=id_column, how="left", maintain_order="left")
    return frame


def derive(clean: pl.LazyFrame, zones: pl.DataFrame) -> pl.LazyFrame:
    """Clean rows (with their duration column) plus every derived column of `TRIPS_SCHEMA`, the duration dropped.

    The zone names are a lookup in the small zone table (a hash join on the location id), row by row, so it
    streams."""
    pickup, total = pl.col("pickup_datetime"), pl.col("total_amount")
    return (
        clean.with_columns(
            trip_duration_min=_duration_us / 60_000_000,
            avg_speed_mph=_speed_mph,
            tip_fraction=pl.when(total > 0).then(pl.col("tip_amount").fill_null(0) / total).otherwise(0.0),
        )
        .with_columns(
            tip_fraction=pl.when(pl.col("tip_fraction").is_finite()).then(pl.col("tip_fraction")),
            pickup_date=pickup.dt.date(),
            pickup_hour=pickup.dt.hour().cast(pl.Int8),
            pickup_weekday=pickup.dt.weekday().cast(pl.Int8),
        )
        .pipe(_with_zone_names, zones)
        .drop(DURATION_US)
    )
