"""A lesson's measured effect as a chart, drawn from `benchmarks/results.json` when the site is built.

One panel per benchmark row of the lesson: the baseline and the optimized variant as two bars (the median of the
repeats, whiskers from the fastest to the slowest), titled with the row's ratio, its target and whether it was met.
Rows of one lesson can have different units (seconds and MiB), so each panel has its own axis; an axis spanning
more than 30x is logarithmic, or the optimized bar would be too thin to see. Nothing here is typed by hand: a new
`make bench` redraws every chart on the next build.
"""

from __future__ import annotations

import io
import re
import textwrap

COLOURS = {True: "#2ca02c", False: "#d62728", None: "#7f7f7f"}  # met, missed, no target (as benchmarks/results.png)
BASELINE_COLOUR = "#9ecae1"
VERDICT = {True: "met", False: "missed"}
PANEL_INCHES = 1.45
WIDTH_INCHES = 7.5
LEFT, RIGHT = 0.25, 0.97  # the panels' edges, as fractions of the figure's width (the labels sit left of them)
# A note on how a row was measured, after its variant's name: "(2 runs in each ...; a cost: lower is better)", or
# any long one ("(the rerun without the wait for ...)"); a short one names the variant: "parquet (zstd)".
NOTE = re.compile(r"\s*\((?:[^()]*[:;][^()]*|[^()]{40,})\)$")


def sides(metric: str) -> tuple[str, str]:
    """`"task call seconds, ...: plain vs quote()"` -> `("plain", "quote()")`: what each bar is."""
    _, _, compared = metric.partition(": ")
    if " vs " not in compared:
        return "baseline", "optimized"
    baseline, optimized = compared.split(" vs ", 1)
    return tuple(NOTE.sub("", side).strip(" ,") for side in (baseline, optimized))  # type: ignore[return-value]


def title(result: dict) -> str:
    """`cache: 6.44x, target >= 20x: missed`: the row, its ratio, and its target when it has one."""
    heading = f"{result['name']}: {result['ratio']:.2f}x"
    if not result["target"]:
        return heading
    verdict = "" if result["met"] is None else f": {VERDICT[result['met']]}"
    return f"{heading}, target {result['target']}{verdict}"


def draw(results: list[dict], lesson: str) -> bytes:
    """The PNG of every row whose `lesson` is `lesson` (`flows/quote.py`); no row is an error."""
    import matplotlib.pyplot as plt

    figure = chart(results, lesson)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=130, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def chart(results: list[dict], lesson: str):  # a matplotlib Figure (imported lazily)
    """The figure `draw` saves: one panel per row of `lesson`."""
    rows = [result for result in results if result["lesson"] == lesson]
    if not rows:
        raise ValueError(f"benchmarks/results.json has no row for {lesson}")
    import matplotlib

    matplotlib.use("Agg")  # no display: the build draws into memory
    import matplotlib.pyplot as plt

    height = PANEL_INCHES * len(rows) + 0.3
    figure, axes = plt.subplots(len(rows), 1, figsize=(WIDTH_INCHES, height), squeeze=False)
    # fixed margins (the labels are wrapped to a known width): a layout engine would cost a second per chart
    figure.subplots_adjust(left=LEFT, right=RIGHT, top=1 - 0.35 / height, bottom=0.3 / height, hspace=0.75)
    for axis, result in zip(axes[:, 0], rows, strict=True):
        medians = [result["baseline"], result["optimized"]]
        lows = [result["min"]["baseline"], result["min"]["optimized"]]
        highs = [result["max"]["baseline"], result["max"]["optimized"]]
        errors = [
            [median - low for median, low in zip(medians, lows, strict=True)],
            [high - median for median, high in zip(medians, highs, strict=True)],
        ]
        labels = ["\n".join(textwrap.wrap(side, 26)) for side in sides(result["metric"])]
        positions = [1, 0]  # baseline on top
        axis.barh(positions, medians, color=[BASELINE_COLOUR, COLOURS[result["met"]]], height=0.6)
        axis.errorbar(medians, positions, xerr=errors, fmt="none", ecolor="black", capsize=3, linewidth=1)
        axis.set_yticks(positions, labels, fontsize=9)
        if max(highs) / max(min(lows), 1e-12) > 30:
            axis.set_xscale("log")
        for position, median, high in zip(positions, medians, highs, strict=True):
            axis.annotate(
                f" {median:.4g} {result['unit']}", (high, position), va="center", fontsize=9, annotation_clip=False
            )
        axis.margins(x=0.18)
        # from the figure's left edge, over the labels, so a long title ("..., target with metrics <= 1.03x without:
        # met") does not run past the right edge; the longest ones a size smaller
        heading = title(result)
        size = 10 if len(heading) <= 80 else 9 if len(heading) <= 95 else 8
        axis.set_title(heading, loc="left", x=-(LEFT - 0.01) / (RIGHT - LEFT), fontsize=size, fontweight="bold")
        axis.tick_params(axis="x", labelsize=8)
        axis.spines[["top", "right"]].set_visible(False)
    return figure
