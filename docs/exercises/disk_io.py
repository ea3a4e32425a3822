"""Exercise 3 (paths, not frames): a report that reads only what it needs from the months' files."""

import polars as pl


def trips_per_borough_plan(paths: list[str]) -> pl.LazyFrame:
    """Trips per pickup borough over the files at `paths`, as a lazy plan: nothing is read until it is collected."""
    return pl.scan_parquet(paths).group_by("pu_borough").agg(pl.len().alias("trips")).sort("pu_borough")


def trips_per_borough(paths: list[str]) -> dict[str, int]:
    """Run the plan: polars reads the one column it needs, a file at a time."""
    report = trips_per_borough_plan(paths).collect()
    return dict(zip(report["pu_borough"].to_list(), report["trips"].to_list(), strict=True))
