"""`anchor_month`: the project's own month code against DuckDB running the same plan in SQL, in core-seconds.

    python -m benchmarks.anchor_case SOURCE MONTH          # both, 3 interleaved rounds of fresh processes

Each sample is a fresh process that loads the zone table, then runs one month and prints its own CPU seconds
(user + sys of every thread, `getrusage(RUSAGE_SELF)`, measured around the month so imports are not counted) and
its peak RSS (`VmHWM`). The project's side is `tasks.pipeline.month.run_month` (polars engine, no Prefect run:
the Delta commit included); DuckDB's is one SQL plan: read the parquet file, the rules as one CASE expression in
`tasks.pipeline.rules` order, the derived columns, the two zone joins, and a zstd parquet file of trips and one
of quarantined rows. DuckDB localizes each time to New York itself where the project looks the month's hours up
(`polars_engine.offsets_by_hour`): the anchor measures cost, its outputs are not held to the project's.
Core-seconds rather than wall seconds: on a shared machine they do not count the time spent waiting for a core.
"""

# ruff: noqa: S608 (the SQL here is made of the project's constants and a generated file's path)
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tasks.observe.measure import Result, map_in_context, run_child
from tasks.observe.peak_memory import peak_rss_bytes

TARGET = 1.2  # the project's core-seconds at most this many times DuckDB's
LESSON = "tasks/pipeline/month.py"
RULES_SQL = """
    CASE
        WHEN pickup_datetime IS NULL OR dropoff_datetime IS NULL OR trip_distance IS NULL
            OR pu_location_id IS NULL OR do_location_id IS NULL OR total_amount IS NULL THEN 'missing_value'
        WHEN pickup_datetime < TIMESTAMP '{start}' OR pickup_datetime >= TIMESTAMP '{end}' THEN 'pickup_outside_month'
        WHEN duration_us <= 0 THEN 'dropoff_not_after_pickup'
        WHEN duration_us > {max_us} THEN 'implausible_duration'
        WHEN trip_distance < 0 OR trip_distance > {max_miles} THEN 'implausible_distance'
        WHEN trip_distance / (duration_us / 3600000000) > {max_mph} THEN 'implausible_speed'
        WHEN total_amount <= 0 THEN 'non_positive_total'
        WHEN pu_location_id NOT IN (SELECT location_id FROM known)
            OR do_location_id NOT IN (SELECT location_id FROM known) THEN 'unknown_zone'
    END"""


def normalized_sql(source: str) -> str:
    """The file's columns as the canonical schema (`tasks.schema.map_columns`), NaN and infinities as null."""
    import pyarrow.parquet as pq

    from tasks.schema import CANONICAL_SCHEMA, map_columns

    names = pq.read_schema(source).names
    mapping = map_columns(names, "yellow", source)
    types = {"int32": "INTEGER", "double": "DOUBLE", "string": "VARCHAR", "timestamp[us]": "TIMESTAMP"}
    columns = []
    for column in mapping.columns:
        kind = types[str(CANONICAL_SCHEMA.field(column.name).type)]
        sources = [f'CAST("{mapping.names[i]}" AS {kind})' for i in column.sources]
        if kind == "DOUBLE":
            sources = [f"CASE WHEN isfinite({value}) THEN {value} END" for value in sources]
        value = f"coalesce({', '.join(sources)})" if len(sources) > 1 else (sources or [f"NULL::{kind}"])[0]
        columns.append(f"{value} AS {column.name}")
    return f"SELECT {', '.join(columns)}, 'yellow' AS service FROM read_parquet('{source}')"


def duckdb_month(source: str, month: str, folder: str) -> None:
    """The month through DuckDB: trips and quarantine written as zstd parquet files in `folder`."""
    import duckdb

    from tasks import settings
    from tasks.months import Month
    from tasks.pipeline.zones import load_zone_table

    zones, period = load_zone_table(), Month.parse(month)
    connection = duckdb.connect()
    connection.register("zone_table", zones.table)
    connection.execute("CREATE TABLE zones AS SELECT DISTINCT ON (location_id) * FROM zone_table")
    connection.execute(f"CREATE TABLE known AS SELECT UNNEST({zones.known_location_ids()}) AS location_id")
    rules = RULES_SQL.format(
        start=period.start,
        end=period.end,
        max_us=settings.MAX_TRIP_HOURS * 3_600_000_000,
        max_miles=settings.MAX_TRIP_MILES,
        max_mph=settings.MAX_AVG_SPEED_MPH,
    )
    flagged = f"""
        WITH rows AS ({normalized_sql(source)}),
        timed AS (SELECT *, epoch_us(timezone('America/New_York', dropoff_datetime))
                          - epoch_us(timezone('America/New_York', pickup_datetime)) AS duration_us FROM rows)
        SELECT *, {rules} AS reason FROM timed"""
    options = "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"
    connection.execute(
        f"COPY (SELECT * EXCLUDE (duration_us) FROM ({flagged}) WHERE reason IS NOT NULL) "
        f"TO '{folder}/quarantine.parquet' {options}"
    )
    connection.execute(
        f"""COPY (
            SELECT f.* EXCLUDE (duration_us, reason),
                duration_us / 60000000 AS trip_duration_min,
                trip_distance / (duration_us / 3600000000) AS avg_speed_mph,
                CASE WHEN total_amount > 0 THEN coalesce(tip_amount, 0) / total_amount ELSE 0 END AS tip_fraction,
                CAST(pickup_datetime AS DATE) AS pickup_date,
                CAST(hour(pickup_datetime) AS TINYINT) AS pickup_hour,
                CAST(isodow(pickup_datetime) AS TINYINT) AS pickup_weekday,
                pz.borough AS pu_borough, pz.zone AS pu_zone, dz.borough AS do_borough, dz.zone AS do_zone
            FROM ({flagged}) f
            LEFT JOIN zones pz ON f.pu_location_id = pz.location_id
            LEFT JOIN zones dz ON f.do_location_id = dz.location_id
            WHERE reason IS NULL
        ) TO '{folder}/trips.parquet' {options}"""
    )


def project_month(source: str, month: str, folder: str) -> None:
    """The month through the project's own code, without a Prefect run, into a lake in `folder`."""
    from tasks.months import Month
    from tasks.pipeline.month import run_month
    from tasks.pipeline.zones import load_zone_table

    run_month(source, "yellow", Month.parse(month), folder, load_zone_table(), "polars")


ENGINES = {"project": project_month, "duckdb": duckdb_month}


def measure(engine: str, source: str, month: str) -> dict[str, float]:
    """Child side: one month on `engine` in this process; its CPU seconds around the month and its peak."""
    import duckdb  # noqa: F401  (both sides pay their imports before the clock starts)
    import prefect  # noqa: F401

    from tasks.pipeline.zones import load_zone_table

    load_zone_table()
    before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory(prefix="anchor-") as folder:
        ENGINES[engine](source, month, folder)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"core_seconds": round(cpu, 3), "peak_rss_mib": round(peak_rss_bytes() / 2**20, 1)}


def anchor_month(source: str, month: str, rows: int, repeats: int, side_by_side: int = 1) -> Result:
    """The row: DuckDB's core-seconds (baseline) against the project's (optimized), rounds interleaved; up to
    `side_by_side` processes at once (a quick run's: core-seconds do not count waiting for a core)."""
    jobs = [engine for _ in range(repeats) for engine in ENGINES]
    with ThreadPoolExecutor(side_by_side) as pool:
        outs = list(
            map_in_context(
                pool, lambda engine: run_child("benchmarks.anchor_case", "--child", engine, source, month), jobs
            )
        )
    samples: dict[str, list[dict[str, float]]] = {engine: [] for engine in ENGINES}
    for engine, out in zip(jobs, outs, strict=True):
        samples[engine].append(out)
    result = Result.from_repeats(
        "anchor_month",
        f"core-seconds of one {rows:,}-row month: DuckDB's SQL of the same plan vs the project's run_month "
        "(a cost: lower is better)",
        [s["core_seconds"] for s in samples["duckdb"]],
        [s["core_seconds"] for s in samples["project"]],
        rows,
        unit="core-s",
        lesson=LESSON,
        target=f"<= {TARGET:g}x DuckDB's core-seconds",
        details=[{f"{engine} peak MiB": [s["peak_rss_mib"] for s in runs] for engine, runs in samples.items()}],
    )
    result.met = result.optimized <= TARGET * result.baseline
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(measure(*argv[1:4])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.anchor_case", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a generated or TLC yellow month (parquet)")
    parser.add_argument("month", help="YYYY-MM")
    parser.add_argument("repeats", type=int, nargs="?", default=3, help="interleaved rounds (default: 3)")
    args = parser.parse_args(argv)
    import pyarrow.parquet as pq

    source = str(args.source.resolve())
    result = anchor_month(source, args.month, pq.read_metadata(source).num_rows, args.repeats)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
