"""The canonical trip schema, and `normalize`: any TLC yellow or green file (2019-2025) mapped onto it.

TLC files drift in names and types from year to year (see `data/README.md`): `Airport_fee` vs `airport_fee`,
`tpep_`/`lpep_` timestamps, codes stored as int32, int64 or double, whole columns absent in older months, and
public mirrors with snake_case aliases. Normalizing once, by column name, lets every later step assume one schema.
Which source column becomes which canonical one is decided once, from the names (`map_columns`), and applied by
each engine, so the pandas and polars paths read a file the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.observe.run_log import step_logger
from tasks.redact import RedactsUrls

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
TEXT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # how a time stored as text is read, by both engines (TLC's CSV format)

# What each canonical column a file can hold is cast to (`service` is added, never read from a file).
SOURCE_TYPES = {field.name: field.type for field in CANONICAL_SCHEMA if field.name != "service"}

# Source column names (lower-cased prefixes) that only one service's files have. A file with none of them, such
# as a snake_case mirror (`pickup_datetime`, ...), cannot be told apart and is accepted for either service.
SERVICE_MARKERS = {"yellow": ("tpep_",), "green": ("lpep_", "trip_type", "ehail_fee")}


class SchemaError(RedactsUrls, ValueError):  # its message names the source: without credentials
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


@dataclass(frozen=True)
class CanonicalColumn:
    """A canonical column and the positions of the file's columns that fold into it (none: typed nulls)."""

    name: str
    type: pa.DataType
    sources: tuple[int, ...]


@dataclass(frozen=True)
class ColumnMapping:
    """How one file's columns become `CANONICAL_SCHEMA`, decided from their names alone (`map_columns`).

    The one description both engines apply (`normalize_table` with pyarrow, `tasks.pipeline.engines.polars_normalize`
    with polars), so they cannot drift: same aliases, columns dropped, folds (`judge_folds`) and typed nulls. Each
    engine only says how to cast one column: NaN and infinities to null, zoned times to New York wall times, text
    times as `TEXT_TIME_FORMAT`, and never changing a value (`lossy_cast_error`).
    """

    names: tuple[str, ...]
    columns: tuple[CanonicalColumn, ...]
    dropped: tuple[str, ...]

    def folded(self) -> list[CanonicalColumn]:
        """The canonical columns that more than one source column folds into."""
        return [column for column in self.columns if len(column.sources) > 1]


def map_columns(names: Sequence[str], service: str, source: str) -> ColumnMapping:
    """The mapping of a file with columns `names`, or `ServiceMismatchError`/`SchemaError` for a file that cannot
    be mapped (the other service's columns, a required column missing). Dropped columns are logged."""
    check_service(list(names), service, source)
    sources: dict[str, list[int]] = {}
    dropped = []
    for position, name in enumerate(names):
        target = canonical_name(name)
        if target in SOURCE_TYPES:
            sources.setdefault(target, []).append(position)
        else:
            dropped.append(name)
    missing = [name for name in REQUIRED_COLUMNS if name not in sources]
    if missing:
        raise SchemaError(f"{source}: missing required column(s) {', '.join(missing)} (found: {', '.join(names)})")
    if dropped:
        step_logger(__name__).info("%s: dropping columns outside the canonical schema: %s", source, ", ".join(dropped))
    columns = tuple(CanonicalColumn(name, kind, tuple(sources.get(name, ()))) for name, kind in SOURCE_TYPES.items())
    return ColumnMapping(tuple(names), columns, tuple(dropped))


def judge_folds(mapping: ColumnMapping, disagreements: dict[str, list[tuple[int, int, int]]], source: str) -> None:
    """Refuse a file whose columns folding into one canonical column disagree; note the ones that agree.

    `disagreements` holds, per folded canonical column, `(position, rows disagreeing, rows compared)` for each of
    its sources after the first: compared with the value kept so far, on the rows where both have a value. Two
    columns that agree (`Airport_fee` empty where `airport_fee` is filled) are coalesced in file order. Two that
    disagree cannot be resolved by a rule: summing or picking one could make a month's revenue ten times too
    large, so the file is refused, naming both columns.
    """
    for column in mapping.folded():
        for position, disagreeing, compared in disagreements[column.name]:
            pair = f"{source}: columns {mapping.names[column.sources[0]]!r} and {mapping.names[position]!r} both map"
            pair += f" to {column.name!r} and"
            if disagreeing:
                raise SchemaError(
                    f"{pair} disagree on {disagreeing:,} of the {compared:,} row(s) where both have a value"
                )
            step_logger(__name__).info(
                "%s agree on the %s row(s) where both have a value; kept one", pair, f"{compared:,}"
            )


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
        if pa.types.is_timestamp(target) and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = pc.strptime(column, format=TEXT_TIME_FORMAT, unit="us")
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise lossy_cast_error(source, name, target) from error


def lossy_cast_error(source: str, name: str, target: pa.DataType) -> SchemaError:
    """The refusal of a column whose values a cast would change, in the same words from either engine."""
    return SchemaError(
        f"{source}: column {name!r} cannot become {target} without changing some of its values (a fraction in a "
        f"code, an id beyond int32, a time finer than microseconds, text that is not a {target})"
    )


def _fold(columns: list[pa.ChunkedArray]) -> tuple[pa.ChunkedArray, list[tuple[int, int]]]:
    """The columns coalesced in order, and for each after the first (rows disagreeing, rows compared) with the
    value kept before it."""
    kept, counts = columns[0], []
    for column in columns[1:]:
        both = pc.and_(pc.is_valid(kept), pc.is_valid(column))
        differ = pc.and_(both, pc.fill_null(pc.not_equal(kept, column), False))
        counts.append((pc.sum(differ).as_py() or 0, pc.sum(both).as_py() or 0))
        kept = pc.coalesce(kept, column)
    return kept, counts


def normalize_table(table: pa.Table, service: str, source: str = "<table>") -> pa.Table:
    """Map `table` onto `CANONICAL_SCHEMA` by column name, adding `service`: `ColumnMapping` applied with pyarrow.

    Absent optional columns become typed nulls; unknown columns (such as green's always-empty `ehail_fee`) are
    dropped with a log line; columns folding into one must agree (`judge_folds`). A file whose columns belong to
    the other service raises `ServiceMismatchError`.
    """
    mapping = map_columns(table.column_names, service, source)
    rows = table.num_rows
    columns, disagreements = [], {}
    for column in mapping.columns:
        casts = [
            _to_canonical_type(table.column(i), column.type, mapping.names[i], source) for i in column.sources
        ] or [pa.chunked_array([pa.nulls(rows, column.type)])]
        folded, counts = _fold(casts)
        disagreements[column.name] = [(i, *count) for i, count in zip(column.sources[1:], counts, strict=True)]
        columns.append(folded)
    judge_folds(mapping, disagreements, source)
    columns.append(pa.chunked_array([pa.nulls(rows, pa.string()).fill_null(service)]))
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
