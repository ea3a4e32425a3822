"""Synthetic TLC trip records: official 2024+ column names and Arrow types, with the real files' quirks.

Each quirk a pipeline must survive is here on purpose, at roughly the rate seen in real months: a null block
(payment_type 0 on yellow), refunds with negative amounts, zero totals, pickups outside the month, dropoffs
before pickups, zero-distance trips, unknown zones and rare codes (RatecodeID 99, VendorID 7). The content is
shaped like the real thing: daily and weekly rhythms, skewed zone popularity, airport trips with their flat
fares, fees and tolls, fares that follow distance and time, and tips only on card payments.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tasks.months import Month
from tasks.pipeline.zones import JFK, LAGUARDIA, NEWARK, OUTSIDE_NYC, UNKNOWN_ZONE, ZONE_SCHEMA

MONEY = pa.float64()
# Official yellow and green parquet schemas from 2024 on (cbd_congestion_fee exists from January 2025).
YELLOW_FIELDS = [
    ("VendorID", pa.int32()),
    ("tpep_pickup_datetime", pa.timestamp("us")),
    ("tpep_dropoff_datetime", pa.timestamp("us")),
    ("passenger_count", pa.int64()),
    ("trip_distance", pa.float64()),
    ("RatecodeID", pa.int64()),
    ("store_and_fwd_flag", pa.large_string()),
    ("PULocationID", pa.int32()),
    ("DOLocationID", pa.int32()),
    ("payment_type", pa.int64()),
    ("fare_amount", MONEY),
    ("extra", MONEY),
    ("mta_tax", MONEY),
    ("tip_amount", MONEY),
    ("tolls_amount", MONEY),
    ("improvement_surcharge", MONEY),
    ("total_amount", MONEY),
    ("congestion_surcharge", MONEY),
    ("Airport_fee", MONEY),
    ("cbd_congestion_fee", MONEY),
]
GREEN_FIELDS = [
    ("VendorID", pa.int32()),
    ("lpep_pickup_datetime", pa.timestamp("us")),
    ("lpep_dropoff_datetime", pa.timestamp("us")),
    ("store_and_fwd_flag", pa.large_string()),
    ("RatecodeID", pa.int64()),
    ("PULocationID", pa.int32()),
    ("DOLocationID", pa.int32()),
    ("passenger_count", pa.int64()),
    ("trip_distance", pa.float64()),
    ("fare_amount", MONEY),
    ("extra", MONEY),
    ("mta_tax", MONEY),
    ("tip_amount", MONEY),
    ("tolls_amount", MONEY),
    ("ehail_fee", MONEY),
    ("improvement_surcharge", MONEY),
    ("total_amount", MONEY),
    ("payment_type", pa.int64()),
    ("trip_type", pa.int64()),
    ("congestion_surcharge", MONEY),
    ("cbd_congestion_fee", MONEY),
]
CBD_FEE_START = np.datetime64("2025-01-05")

# Relative trips per hour of day (0-23), and per weekday (Monday first).
HOURLY_WEEKDAY = np.array(
    [
        2.0,
        1.2,
        0.8,
        0.6,
        0.6,
        1.0,
        2.2,
        3.8,
        4.8,
        4.8,
        4.6,
        4.7,
        5.0,
        5.0,
        5.3,
        5.7,
        5.9,
        6.5,
        7.0,
        6.6,
        5.9,
        5.6,
        5.0,
        3.6,
    ]
)
HOURLY_WEEKEND = np.array(
    [
        4.6,
        3.8,
        3.0,
        2.2,
        1.4,
        1.0,
        1.0,
        1.4,
        2.2,
        3.2,
        4.0,
        4.6,
        5.0,
        5.2,
        5.3,
        5.3,
        5.3,
        5.4,
        5.6,
        5.6,
        5.4,
        5.4,
        5.4,
        5.2,
    ]
)
WEEKDAY_WEIGHT = np.array([0.90, 1.0, 1.05, 1.10, 1.12, 1.05, 0.85])
SERVICE_PROFILE = {
    # borough shares of ordinary pickups, vendor mix, share of airport pickups, median miles, null-block rate
    "yellow": dict(
        boroughs={"Manhattan": 0.90, "Queens": 0.05, "Brooklyn": 0.04, "Bronx": 0.01},
        vendors=({2: 0.755, 1: 0.24, 7: 0.005}),
        airport_pickups=0.06,
        median_miles=1.7,
        null_block=0.12,
    ),
    "green": dict(
        boroughs={"Manhattan": 0.30, "Queens": 0.30, "Brooklyn": 0.28, "Bronx": 0.12},
        vendors=({2: 0.86, 1: 0.14}),
        airport_pickups=0.01,
        median_miles=2.4,
        null_block=0.06,
    ),
}

# How many of the IDs 2-263 lie in each borough in TLC's table; the generator's own zones keep these proportions.
ZONES_PER_BOROUGH = {"Manhattan": 69, "Queens": 69, "Brooklyn": 61, "Bronx": 43, "Staten Island": 20}


def synthetic_zone_table() -> pa.Table:
    """The generator's own deterministic zones: real airport IDs and borough sizes, boroughs shuffled.

    Only the generator uses it, to give each service its borough mix; the pipeline always uses TLC's table.
    Kept (rather than reading TLC's) so that `make sample` still reproduces the committed sample row for row.
    """
    rng = np.random.default_rng(265)
    ordinary_ids = [i for i in range(2, UNKNOWN_ZONE) if i not in (JFK, LAGUARDIA)]
    boroughs = [b for b, n in ZONES_PER_BOROUGH.items() for _ in range(n - 2 * (b == "Queens"))]
    rows = {i: (b, f"Synthetic zone {i:03d}") for i, b in zip(ordinary_ids, rng.permutation(boroughs), strict=True)}
    rows |= {
        NEWARK: ("EWR", "Newark Airport"),
        JFK: ("Queens", "JFK Airport"),
        LAGUARDIA: ("Queens", "LaGuardia Airport"),
        UNKNOWN_ZONE: ("Unknown", "N/A"),
        OUTSIDE_NYC: ("N/A", "Outside of NYC"),
    }
    ids = sorted(rows)
    service_zone = {"EWR": "EWR", "Manhattan": "Yellow Zone", "Unknown": "N/A", "N/A": "N/A"}
    return pa.table(
        {
            "location_id": pa.array(ids, pa.int32()),
            "borough": [rows[i][0] for i in ids],
            "zone": [rows[i][1] for i in ids],
            "service_zone": [
                "Airports" if i in (JFK, LAGUARDIA) else service_zone.get(rows[i][0], "Boro Zone") for i in ids
            ],
        },
        schema=ZONE_SCHEMA,
    )


def _zone_weights(service: str) -> tuple[np.ndarray, np.ndarray]:
    """Zone IDs and a skewed (Zipf-like within each borough) pickup/dropoff popularity for one service."""
    zones = synthetic_zone_table().to_pydict()
    ids, boroughs = np.array(zones["location_id"]), np.array(zones["borough"])
    weights = np.zeros(len(ids))
    order_rng = np.random.default_rng(7)
    for borough, share in SERVICE_PROFILE[service]["boroughs"].items():
        members = np.flatnonzero(boroughs == borough)
        ranks = order_rng.permutation(len(members)) + 1
        zipf = 1.0 / ranks**1.1
        weights[members] = share * zipf / zipf.sum()
    return ids, weights / weights.sum()


def _sample_pickups(rng: np.random.Generator, month: Month, n: int) -> np.ndarray:
    days = np.arange(month.start.date(), month.end.date(), dtype="datetime64[D]")
    weekday = (days.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday
    hourly = np.where((weekday >= 5)[:, None], HOURLY_WEEKEND, HOURLY_WEEKDAY) * WEEKDAY_WEIGHT[weekday][:, None]
    slot = rng.choice(hourly.size, size=n, p=(hourly / hourly.sum()).ravel())
    seconds = (slot // 24) * 86_400 + (slot % 24) * 3_600 + rng.integers(0, 3_600, n)
    return days[0].astype("datetime64[s]") + seconds.astype("timedelta64[s]")


def _pick(rng: np.random.Generator, choices: dict, n: int) -> np.ndarray:
    return rng.choice(np.array(list(choices)), size=n, p=np.array(list(choices.values())))


def generate_trips(service: str, month: Month, rows: int, rng: np.random.Generator) -> pa.Table:
    """`rows` synthetic trips of `service` in `month`, in the official schema for that month."""
    profile = SERVICE_PROFILE[service]
    pickup = _sample_pickups(rng, month, rows)
    hour = (pickup.astype("datetime64[h]").astype("int64")) % 24
    weekday = (pickup.astype("datetime64[D]").astype("int64") + 3) % 7
    zone_ids, zone_weights = _zone_weights(service)
    pu = rng.choice(zone_ids, rows, p=zone_weights).astype(np.int32)
    do = rng.choice(zone_ids, rows, p=zone_weights).astype(np.int32)
    airport_pickup = rng.random(rows) < profile["airport_pickups"]
    pu[airport_pickup] = np.where(rng.random(airport_pickup.sum()) < 0.55, JFK, LAGUARDIA)
    do = np.where(rng.random(rows) < 0.045, rng.choice([JFK, LAGUARDIA, NEWARK], rows, p=[0.45, 0.48, 0.07]), do)
    pu[rng.random(rows) < 0.004], do[rng.random(rows) < 0.003] = UNKNOWN_ZONE, OUTSIDE_NYC
    airport_trip = np.isin(pu, [JFK, LAGUARDIA]) | np.isin(do, [JFK, LAGUARDIA, NEWARK])

    distance = rng.lognormal(np.log(profile["median_miles"]), 0.75, rows)
    distance = np.where(airport_trip, rng.normal(14, 3.5, rows).clip(5, 30), distance)
    distance = np.where(rng.random(rows) < 0.015, 0.0, distance.round(2))
    mph = np.where((hour >= 22) | (hour < 6), 17.0, 10.0) * rng.lognormal(0, 0.3, rows)
    seconds = np.where(distance > 0, distance / mph * 3_600 + rng.integers(30, 240, rows), rng.integers(0, 300, rows))
    dropoff = pickup + seconds.astype("timedelta64[s]")

    ratecode = np.ones(rows, dtype=np.int64)
    ratecode[(pu == JFK) | (do == JFK)] = 2
    ratecode[do == NEWARK] = 3
    ratecode = np.where(rng.random(rows) < 0.006, rng.choice([4, 5, 6, 99], rows, p=[0.3, 0.45, 0.05, 0.2]), ratecode)
    metered = 3.0 + 3.5 * distance + 0.7 * 0.3 * seconds / 60
    fare = np.select(
        [ratecode == 2, ratecode == 3, ratecode == 5],
        [70.0, metered + 20, rng.uniform(20, 120, rows)],
        metered,
    ).round(2)
    rush = (weekday < 5) & (hour >= 16) & (hour < 20)
    extra = np.where(rush, 2.5, 0.0) + np.where((hour >= 20) | (hour < 6), 1.0, 0.0)
    mta_tax, improvement = np.full(rows, 0.5), np.full(rows, 1.0)
    congestion = np.where(rng.random(rows) < (0.9 if service == "yellow" else 0.12), 2.5, 0.0)
    airport_fee = np.where(np.isin(pu, [JFK, LAGUARDIA]), 1.75, 0.0)
    cbd_fee = np.where((pickup >= CBD_FEE_START) & (rng.random(rows) < 0.7), 0.75, 0.0)
    tolls = np.where(rng.random(rows) < np.where(airport_trip, 0.6, 0.04), 6.94, 0.0)
    payment = _pick(rng, {1: 0.78, 2: 0.17, 3: 0.02, 4: 0.025, 5: 0.005}, rows).astype(np.int64)
    null_block = rng.random(rows) < profile["null_block"]  # no rate code, flag, surcharges; payment_type 0
    payment[null_block] = 0
    congestion[null_block], airport_fee[null_block] = 0.0, 0.0
    tipped = (payment == 1) & (rng.random(rows) < 0.85)
    subtotal = fare + extra + mta_tax + improvement + congestion + airport_fee + cbd_fee + tolls
    tip = np.where(tipped, (subtotal * rng.uniform(0.12, 0.30, rows)).round(2), 0.0)
    amounts = np.vstack([fare, extra, mta_tax, tip, tolls, improvement, congestion, airport_fee, cbd_fee])

    refund = (rng.random(rows) < 0.01) & ~null_block
    amounts[:, refund] *= -1
    payment[refund] = rng.choice([3, 4, 6], refund.sum())
    free = (rng.random(rows) < 0.001) & ~null_block
    amounts[:, free], payment[free] = 0.0, 3
    total = amounts.sum(axis=0).round(2)

    stray = rng.random(rows)
    pickup = np.where(stray < 0.0002, pickup - np.timedelta64(31, "D"), pickup)  # a day in the previous month
    pickup = np.where(stray > 0.99995, np.datetime64("2009-01-01T00:05:00"), pickup)
    swapped = rng.random(rows) < 0.0001
    pickup, dropoff = np.where(swapped, dropoff, pickup), np.where(swapped, pickup, dropoff)

    passengers = _pick(rng, {1: 0.74, 2: 0.14, 3: 0.035, 4: 0.02, 5: 0.025, 6: 0.015, 0: 0.025}, rows)
    flag = np.where(rng.random(rows) < 0.005, "Y", "N")
    columns = {
        "VendorID": pa.array(_pick(rng, profile["vendors"], rows), pa.int32()),
        "pickup": pa.array(pickup.astype("datetime64[us]")),
        "dropoff": pa.array(dropoff.astype("datetime64[us]")),
        "passenger_count": pa.array(passengers, pa.int64(), mask=null_block),
        "trip_distance": pa.array(distance),
        "RatecodeID": pa.array(ratecode, mask=null_block),
        "store_and_fwd_flag": pa.array(flag, pa.large_string(), mask=null_block),
        "PULocationID": pa.array(pu),
        "DOLocationID": pa.array(do),
        "payment_type": pa.array(payment),
        "total_amount": pa.array(total),
        "ehail_fee": pa.nulls(rows, MONEY),
        "trip_type": pa.array(np.where(rng.random(rows) < 0.96, 1, 2), pa.int64(), mask=null_block),
    }
    for name, values in zip(
        ["fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge"],
        amounts[:6],
        strict=True,
    ):
        columns[name] = pa.array(values.round(2))
    for name, values in zip(["congestion_surcharge", "Airport_fee"], amounts[6:8], strict=True):
        columns[name] = pa.array(values.round(2), mask=null_block)
    columns["cbd_congestion_fee"] = pa.array(amounts[8].round(2))
    if service == "green":
        columns["payment_type"] = pa.array(payment, mask=null_block)
    return _assemble(service, month, columns)


def schema_for(service: str, month: Month) -> pa.Schema:
    """The official schema of `service` files for `month` (no `cbd_congestion_fee` before 2025)."""
    fields = YELLOW_FIELDS if service == "yellow" else GREEN_FIELDS
    return pa.schema([f for f in fields if f[0] != "cbd_congestion_fee" or month >= Month(2025, 1)])


def _assemble(service: str, month: Month, columns: dict[str, pa.Array]) -> pa.Table:
    schema = schema_for(service, month)
    prefix = "tpep" if service == "yellow" else "lpep"
    columns[f"{prefix}_pickup_datetime"], columns[f"{prefix}_dropoff_datetime"] = (
        columns["pickup"],
        columns["dropoff"],
    )
    return pa.table([columns[name].cast(schema.field(name).type) for name in schema.names], schema=schema)
