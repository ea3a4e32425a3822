"""The macros that show `benchmarks/results.json` on the course site (registered in docs/hooks.py's MACROS).

Each returns Markdown built from the committed results: a table of rows chosen by name or by lesson module, one
row's ratio for a sentence, a row's detail table, the machine and the run's own duration, and a lesson's chart
(drawn by `docs/lesson_charts.py` when the site is built). A row that is not there fails the build.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

RESULTS_JSON = Path(__file__).resolve().parents[1] / "benchmarks" / "results.json"
# Site path of a lesson module's chart: `flows/quote.py` -> `assets/lessons/quote.png`.
LESSON_CHART = "assets/lessons/{stem}.png"

# A macro's link to a site file starts with this; `expand_macros` makes it relative to the page it is on.
SITE_ROOT = "{site_root}/"


def benchmark_document() -> dict[str, Any]:
    return json.loads(RESULTS_JSON.read_text())


def benchmark_machine() -> str:
    """Where and how the committed results were measured."""
    document = benchmark_document()
    machine = document["machine"]
    size = "tiny months (`--quick`): the figures mean little" if document["quick"] else "generated months"
    return (
        f"Measured by `make bench` on {machine['cores']} cores and {machine['memory_gb']} GB, Python "
        f"{machine['python']}, prefect {machine['prefect']}, on {size} of {document['rows_per_month']:,} rows; "
        f"each figure is the median of {document['repeats']} repeats, (min-max) their range."
    )


def with_unit(result: dict[str, Any], side: str) -> str:
    """`7.312 s (7.102-9.111)`: a side's median with its unit, then the range of its repeats."""
    from benchmarks.report import figure

    return f"{figure(result[side])} {result['unit']} ({figure(result['min'][side])}-{figure(result['max'][side])})"


def benchmark_rows(*names_or_lessons: str) -> str:
    """Benchmark rows chosen by name or by lesson module (`flows/quote.py`), as a table with their targets."""
    from benchmarks.report import MET, details_table

    results = benchmark_document()["results"]
    chosen = [result for result in results if {result["name"], result["lesson"]} & set(names_or_lessons)]
    found = {result["name"] for result in chosen} | {result["lesson"] for result in chosen}
    if missing := [wanted for wanted in names_or_lessons if wanted not in found]:
        raise PluginError(f"benchmarks/results.json has no row for {missing}")
    return "\n".join(
        details_table(  # the project's own Markdown table of rows (benchmarks/report.py)
            [
                {
                    "result": f"`{result['name']}`",
                    "what is compared": result["metric"],
                    "baseline": with_unit(result, "baseline"),
                    "optimized": with_unit(result, "optimized"),
                    "ratio": f"{result['ratio']:.2f}x",
                    "target": result["target"] or "-",
                    "met": MET[result["met"]],
                }
                for result in chosen
            ]
        )
    )


def benchmark_duration() -> str:
    """How long the committed `make bench` run took, as it recorded it (`seconds` in results.json)."""
    document = benchmark_document()
    if not document.get("seconds"):
        raise PluginError("benchmarks/results.json records no duration (`seconds`): rerun `make bench`")
    return f"{document['seconds'] / 60:.1f} minutes"


def lesson_chart(lesson: str) -> str:
    """A lesson module's chart (drawn in `on_files`), with a caption that says how to read it."""
    rows = [result for result in benchmark_document()["results"] if result["lesson"] == lesson]
    if not rows:
        raise PluginError(f"benchmarks/results.json has no row for {lesson}")
    names = ", ".join(f"<code>{result['name']}</code>" for result in rows)
    chart = f"{SITE_ROOT}{LESSON_CHART.format(stem=Path(lesson).stem)}"
    return (
        '<figure class="lesson-chart" markdown="span">\n'
        f"  ![The measured effect of {lesson}, baseline against optimized]({chart})\n"
        f"  <figcaption>{names}: the baseline (light bar, on top) against the optimized variant, the median of the "
        "repeats with whiskers from the fastest to the slowest. Green met its target, red missed it, grey has none. "
        "Drawn from <code>benchmarks/results.json</code> when the site is built.</figcaption>\n"
        "</figure>"
    )


def benchmark_ratio(name: str) -> str:
    """One row's ratio (median baseline / median optimized), for a sentence."""
    for result in benchmark_document()["results"]:
        if result["name"] == name:
            return f"{result['ratio']:.2f}x"
    raise PluginError(f"benchmarks/results.json has no row {name!r}")


def benchmark_details(name: str) -> str:
    """The detail table a row carries (per serializer, per step, per engine)."""
    from benchmarks.report import details_table

    for result in benchmark_document()["results"]:
        if result["name"] == name:
            if not result["details"]:
                raise PluginError(f"benchmark row {name!r} has no details")
            return "\n".join(details_table(result["details"]))
    raise PluginError(f"benchmarks/results.json has no row {name!r}")


def benchmark_all() -> str:
    """Every row of the committed results."""
    return benchmark_rows(*(result["name"] for result in benchmark_document()["results"]))
