"""The scale section's chart: wall seconds and peak memory against months, one line per runner.

Drawn from the `year_wall` row's details in `results.json` (medians, with the range of the repeats where a point
has several), beside the issue's targets, so the picture and the table cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.scale_rows import BARE_2, CURVE, FLOW_OVER_BARE, PROCESS_MIB

SCALE_CHART = "scale.png"


def curve_rows(document: dict) -> list[dict]:
    """The per-runner, per-month-count rows of the scale section; empty when the run did not measure it."""
    row = next((result for result in document["results"] if result["name"] == "year_wall"), None)
    return row["details"] if row else []


def write_scale_chart(document: dict, path: Path) -> bool:
    """Write the chart to `path` if the document has a scale section; whether it did."""
    rows = [row for row in curve_rows(document) if row["runner"] in CURVE]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chart, (seconds_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    year = max(row["months"] for row in rows)
    for runner in CURVE:
        points = sorted((row for row in rows if row["runner"] == runner), key=lambda row: row["months"])
        months = [row["months"] for row in points]
        for axis, column in ((seconds_axis, "wall s"), (memory_axis, "largest process peak MiB")):
            medians = [row[column]["median"] for row in points]
            ranges = [
                [row[column]["median"] - row[column]["min"] for row in points],
                [row[column]["max"] - row[column]["median"] for row in points],
            ]
            axis.errorbar(months, medians, yerr=ranges, marker="o", capsize=3, label=runner)
    bare_year = next(row["wall s"]["median"] for row in rows if row["runner"] == BARE_2 and row["months"] == year)
    seconds_axis.scatter(
        [year],
        [bare_year * FLOW_OVER_BARE],
        marker="*",
        s=120,
        color="black",
        zorder=3,
        label=f"target: taxi_etl within {FLOW_OVER_BARE:g}x of bare",
    )
    memory_axis.axhline(PROCESS_MIB, color="black", linestyle="--", linewidth=0.8, label="target: every process")
    seconds_axis.set(xlabel="months", ylabel="wall seconds (median, range)", title="Time against months")
    memory_axis.set(xlabel="months", ylabel="largest process peak RSS, MiB", title="Peak memory against months")
    for axis in (seconds_axis, memory_axis):
        axis.set_xticks(sorted({row["months"] for row in rows}))
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    seconds_axis.legend(fontsize=8)
    memory_axis.legend(fontsize=8)
    chart.suptitle(f"Scale: months of {document['rows_per_month']:,} generated rows, one plan per month")
    chart.tight_layout()
    chart.savefig(path, dpi=110)
    plt.close(chart)
    return True
