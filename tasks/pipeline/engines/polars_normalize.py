"""Normalization in polars: `tasks.schema.ColumnMapping` applied to a lazy scan, so a month streams.

The mapping (which source columns fold into which canonical column, which are dropped, what is required) is the
one `tasks.schema.normalize_table` applies with pyarrow; only the expressions are polars'. pyarrow refuses a lossy
cast or a disagreeing fold as it computes them; a lazy plan computes nothing until it runs, so `normalized_columns`
counts both in one streamed pass over the file's columns first and refuses the file in the same words.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from tasks.schema import (
    CANONICAL_SCHEMA,
    NEW_YORK,
    SOURCE_TYPES,
    TEXT_TIME_FORMAT,
    ColumnMapping,
    judge_folds,
    lossy_cast_error,
    map_columns,
)


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars types of an Arrow schema (timestamp[us] -> Datetime("us"), date32 -> Date, ...)."""
    return pl.from_arrow(schema.empty_table()).schema


CANONICAL_TYPES = polars_schema(CANONICAL_SCHEMA)


def _prepared(name: str, source_type: pl.DataType) -> pl.Expr:
    """A source column before its cast: NaN and infinities as null, zoned times as New York wall times (the same
    preparation as `tasks.schema._to_canonical_type`)."""
    column = pl.col(name)
    if source_type.is_float():
        column = pl.when(column.is_finite()).then(column)
    if isinstance(source_type, pl.Datetime) and source_type.time_zone is not None:
        column = column.dt.convert_time_zone(NEW_YORK).dt.replace_time_zone(None)
    return column


def _cast(name: str, source_type: pl.DataType, target: pl.DataType) -> pl.Expr:
    """The source column as its canonical type; a value the cast cannot keep becomes null (counted by `_lost`)."""
    column = _prepared(name, source_type)
    if source_type == pl.String and isinstance(target, pl.Datetime):
        return column.str.strptime(target, TEXT_TIME_FORMAT, strict=False)
    return column.cast(target, strict=False)


def _lost(name: str, source_type: pl.DataType, target: pl.DataType) -> pl.Expr | None:
    """How many values of the column its cast loses or changes (a code of 1.5, an id beyond int32, a nanosecond
    time, unreadable text), as pyarrow's safe cast refuses them: cast there and back and compare. None when the
    column needs no cast."""
    if source_type == target:
        return None
    before, after = _prepared(name, source_type), _cast(name, source_type, target)
    changed = after.is_null()
    if source_type.is_numeric() or source_type.is_temporal():
        prepared_type = pl.Datetime(source_type.time_unit) if isinstance(source_type, pl.Datetime) else source_type
        changed = changed | (after.cast(prepared_type, strict=False) != before)
    return (before.is_not_null() & changed.fill_null(True)).sum().alias(name)


def _fold_counts(mapping: ColumnMapping, source_types: pl.Schema) -> list[pl.Expr]:
    """For each source after the first of a folded column: rows where it and the value kept before it both have
    a value and differ, and rows where both have a value (`tasks.schema.judge_folds` reads them)."""
    counts = []
    for column in mapping.folded():
        names = [mapping.names[i] for i in column.sources]
        casts = [_cast(name, source_types[name], CANONICAL_TYPES[column.name]) for name in names]
        kept = casts[0]
        for position, cast in zip(column.sources[1:], casts[1:], strict=True):
            both = kept.is_not_null() & cast.is_not_null()
            counts += [
                (both & (kept != cast)).sum().alias(f"_differ_{position}"),
                both.sum().alias(f"_both_{position}"),
            ]
            kept = pl.coalesce(kept, cast)
    return counts


def check_values(scan: pl.LazyFrame, mapping: ColumnMapping, source: str) -> None:
    """Refuse a file a cast would change or whose folded columns disagree: one streamed pass over its columns."""
    source_types = scan.collect_schema()
    lossy = []
    for column in mapping.columns:
        for name in (mapping.names[i] for i in column.sources):
            lost = _lost(name, source_types[name], CANONICAL_TYPES[column.name])
            lossy += [] if lost is None else [(name, column.name, lost)]
    counts = [lost for _, _, lost in lossy] + _fold_counts(mapping, source_types)
    if not counts:
        return
    found = scan.select(counts).collect(engine="streaming").row(0, named=True)
    for name, canonical, _ in lossy:
        if found[name]:
            raise lossy_cast_error(source, name, SOURCE_TYPES[canonical])
    disagreements = {
        column.name: [(i, found[f"_differ_{i}"], found[f"_both_{i}"]) for i in column.sources[1:]]
        for column in mapping.folded()
    }
    judge_folds(mapping, disagreements, source)


def normalized_columns(scan: pl.LazyFrame, service: str, source: str) -> list[pl.Expr]:
    """The expressions mapping `scan`'s columns onto `CANONICAL_SCHEMA` (`tasks.schema.ColumnMapping`), after
    `check_values` has read it once, streamed, and found nothing to refuse. They apply to any frame of the file's
    rows (a batch of it too). Raises `ServiceMismatchError` and `SchemaError` as `normalize_table` does."""
    source_types = scan.collect_schema()
    mapping = map_columns(list(source_types), service, source)
    check_values(scan, mapping, source)
    columns = []
    for column in mapping.columns:
        target = CANONICAL_TYPES[column.name]
        casts = [_cast(mapping.names[i], source_types[mapping.names[i]], target) for i in column.sources]
        columns.append((pl.coalesce(casts) if casts else pl.lit(None, dtype=target)).alias(column.name))
    return [*columns, pl.lit(service, dtype=pl.String).alias("service")]
