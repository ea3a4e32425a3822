"""The canonical trip schema, and `normalize`: any TLC yellow or green file (2019-2025) mapped onto it.

TLC files drift in names and types from year to year (see `data/README.md`): `Airport_fee` vs `airport_fee`,
`tpep_`/`lpep_` timestamps, codes stored as int32, int64 or double, whole columns absent in older months, and
public mirrors with snake_case aliases. Normalizing once, by column name, lets every later step assume one schema.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.run_log import step_logger

CODE = pa.int32()
MONEY = pa.float64()

CANONICAL_SCHEMA = pa.schema(
    [
        ("vendor_id", CODE),
        ("pickup_datetime", pa.timestamp("us")),
        ("dropoff_datetime", pa.timestamp("us")),
        ("passenger_count", CODE),
        ("trip_distance", pa.float64()),
        ("ratecode_id", CODE),
        ("store_and_fwd_flag", pa.string()),
        ("pu_location_id", CODE),
        ("do_location_id", CODE),
        ("payment_type", CODE),
        ("fare_amount", MONEY),
        ("extra", MONEY),
        ("mta_tax", MONEY),
        ("tip_amount", MONEY),
        ("tolls_amount", MONEY),
        ("improvement_surcharge", MONEY),
        ("total_amount", MONEY),
        ("congestion_surcharge", MONEY),
        ("airport_fee", MONEY),
        ("cbd_congestion_fee", MONEY),
        ("trip_type", CODE),
        ("service", pa.string()),
    ]
)
CANONICAL_COLUMNS = tuple(CANONICAL_SCHEMA.names)

# Columns the validation rules need: a file without them cannot be processed at all.
REQUIRED_COLUMNS = (
    "pickup_datetime",
    "dropoff_datetime",
    "trip_distance",
    "pu_location_id",
    "do_location_id",
    "total_amount",
)

# Lower-cased source names that differ from the canonical name. Matching is case-insensitive, so
# `VendorID`, `Airport_fee` and `airport_fee` need no entry of their own beyond their lower-case form.
ALIASES = {
    "vendorid": "vendor_id",
    "tpep_pickup_datetime": "pickup_datetime",
    "lpep_pickup_datetime": "pickup_datetime",
    "tpep_dropoff_datetime": "dropoff_datetime",
    "lpep_dropoff_datetime": "dropoff_datetime",
    "ratecodeid": "ratecode_id",
    "rate_code_id": "ratecode_id",
    "pulocationid": "pu_location_id",
    "pickup_location_id": "pu_location_id",
    "dolocationid": "do_location_id",
    "dropoff_location_id": "do_location_id",
}

NEW_YORK = "America/New_York"

# Source column names (lower-cased prefixes) that only one service's files have. A file with none of them, such
# as a snake_case mirror (`pickup_datetime`, ...), cannot be told apart and is accepted for either service.
SERVICE_MARKERS = {"yellow": ("tpep_",), "green": ("lpep_", "trip_type", "ehail_fee")}


class SchemaError(ValueError):
    """A file whose columns cannot be mapped onto the canonical schema."""


class ServiceMismatchError(SchemaError):
    """A file whose columns belong to the other service (green trips asked to load as yellow, or the reverse)."""


def services_named_by(column_names: list[str]) -> dict[str, list[str]]:
    """For each service, the columns in `column_names` that only that service's files have."""
    lowered = [name.strip().lower() for name in column_names]
    return {
        service: [name for name, low in zip(column_names, lowered, strict=True) if low.startswith(markers)]
        for service, markers in SERVICE_MARKERS.items()
    }


def check_service(column_names: list[str], service: str, source: str) -> None:
    """Refuse a file whose columns name another service than `service`: it would be written under the wrong one."""
    for other, columns in services_named_by(column_names).items():
        if other != service and columns:
            raise ServiceMismatchError(
                f"{source}: columns {', '.join(columns)} are {other} taxi columns, but the run is for {service}; "
                f"check --service (or the file). Nothing was written."
            )


def canonical_name(source_name: str) -> str:
    """The canonical column a source column maps to (its own lower-case name when it has no alias)."""
    lowered = source_name.strip().lower()
    return ALIASES.get(lowered, lowered)


def _to_canonical_type(column: pa.ChunkedArray, target: pa.DataType, name: str, source: str) -> pa.ChunkedArray:
    """Cast one column, refusing lossy casts (a code of 1.5 is an error, not a silent 1).

    NaN and infinities become null first: no TLC value is either, pandas writes a missing double as NaN, and the
    later steps (in both engines) must see one kind of missing value, not three.
    """
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_finite(column), column, pa.scalar(None, column.type))
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = pc.local_timestamp(column.cast(pa.timestamp(column.type.unit, NEW_YORK)))
    try:
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SchemaError(f"{source}: column {name!r} of type {column.type} cannot become {target}: {error}") from error


def normalize_table(table: pa.Table, service: str, source: str = "<table>") -> pa.Table:
    """Map `table` onto `CANONICAL_SCHEMA` by column name, adding `service`.

    Absent optional columns become typed nulls; unknown columns (such as green's always-empty `ehail_fee`)
    are dropped with a log line; when two source columns map to one canonical column, their values are
    coalesced in file order. A file whose columns belong to the other service raises `ServiceMismatchError`.
    """
    check_service(table.column_names, service, source)
    by_canonical: dict[str, pa.ChunkedArray] = {}
    unknown: list[str] = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        target = canonical_name(name)
        if target not in CANONICAL_SCHEMA.names or target == "service":
            unknown.append(name)
            continue
        column = _to_canonical_type(column, CANONICAL_SCHEMA.field(target).type, name, source)
        by_canonical[target] = pc.coalesce(by_canonical[target], column) if target in by_canonical else column
    if unknown:
        step_logger(__name__).info("%s: dropping columns outside the canonical schema: %s", source, ", ".join(unknown))
    missing = [name for name in REQUIRED_COLUMNS if name not in by_canonical]
    if missing:
        raise SchemaError(
            f"{source}: missing required column(s) {', '.join(missing)} (found: {', '.join(table.column_names)})"
        )
    rows = table.num_rows
    by_canonical["service"] = pa.chunked_array([pa.nulls(rows, pa.string()).fill_null(service)])
    columns = [by_canonical.get(field.name, pa.nulls(rows, field.type)) for field in CANONICAL_SCHEMA]
    return pa.Table.from_arrays(columns, schema=CANONICAL_SCHEMA)


# What `transform` adds to clean rows, and what `validate` adds to quarantined ones.
DERIVED_FIELDS = [
    pa.field("trip_duration_min", pa.float64()),
    pa.field("avg_speed_mph", pa.float64()),
    pa.field("tip_fraction", pa.float64()),
    pa.field("pickup_date", pa.date32()),
    pa.field("pickup_hour", pa.int8()),
    pa.field("pickup_weekday", pa.int8()),  # ISO: 1 = Monday ... 7 = Sunday
    pa.field("pu_borough", pa.string()),
    pa.field("pu_zone", pa.string()),
    pa.field("do_borough", pa.string()),
    pa.field("do_zone", pa.string()),
]
TRIPS_SCHEMA = pa.schema([*CANONICAL_SCHEMA, *DERIVED_FIELDS])
QUARANTINE_SCHEMA = pa.schema([*CANONICAL_SCHEMA, pa.field("reason", pa.string())])


normalize = task(name="normalize", cache_policy=NO_CACHE)(normalize_table)  # the step as a task (tasks/__init__.py)
