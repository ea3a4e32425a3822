"""The pipeline page's diagram of one month, drawn as SVG by matplotlib when the site is built (docs/hooks.py).

One month is one task run (`month-yellow-2025-01`) of a `taxi_etl` run: extract -> check -> validate -> transform
-> load, then two Delta commits in a fixed order, quarantine first, then trips recording the quarantine version it
pairs with, so a reader that starts from trips never pairs one run's trips with another run's quarantine. The
site is built offline, so the diagram is a file of the site, not a script a CDN would have to serve (mermaid);
its text stays text (`svg.fonttype: none`), so the page's search and a test can read it.
"""

from __future__ import annotations

import io
import textwrap

STEP_COLOUR, STEP_EDGE = "#e3f2fd", "#1565c0"
QUARANTINE_COLOUR, QUARANTINE_EDGE = "#fff3e0", "#e65100"
TRIPS_COLOUR, TRIPS_EDGE = "#e8f5e9", "#2e7d32"
TEXT, MUTED = "#212121", "#616161"

# (name, what it does): the steps of one month, left to right.
STEPS = (
    ("extract", "the month's file as parquet to scan (http, CSV staged on disk)"),
    ("check", "columns mapped onto one schema; a file mostly of another month refused"),
    ("validate", "rules in order: a failing row keeps the reason of the first it breaks"),
    ("transform", "clean rows get duration, speed, date parts, zones and boroughs"),
    ("load", "two Delta commits in order: 1 quarantine, 2 trips"),
)
WIDTH, HEIGHT = 100.0, 60.0  # the drawing's own units; the figure is 8.5 x 5.1 inches (text fits the column)


def box(axes, x: float, y: float, width: float, height: float, face: str, edge: str, **style) -> None:
    from matplotlib.patches import FancyBboxPatch

    shape = FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0,rounding_size=1.2", fc=face, ec=edge, **style)
    axes.add_patch(shape)


def arrow(axes, start: tuple[float, float], end: tuple[float, float], colour: str = TEXT, **style) -> None:
    from matplotlib.patches import FancyArrowPatch

    axes.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=colour, lw=1.3, **style))


def cylinder(axes, x: float, y: float, width: float, height: float, face: str, edge: str) -> None:
    """A Delta table, drawn as storage: a body and its top and bottom ellipses."""
    from matplotlib.patches import Ellipse, Rectangle

    rim = 3.0
    axes.add_patch(Ellipse((x + width / 2, y), width, rim, fc=face, ec=edge, lw=1.3))
    axes.add_patch(Rectangle((x, y), width, height, fc=face, ec="none"))
    axes.plot([x, x], [y, y + height], color=edge, lw=1.3)
    axes.plot([x + width, x + width], [y, y + height], color=edge, lw=1.3)
    axes.add_patch(Ellipse((x + width / 2, y + height), width, rim, fc=face, ec=edge, lw=1.3))


def label(axes, x: float, y: float, text: str, size: float = 8.5, **style) -> None:
    axes.text(x, y, text, fontsize=size, color=style.pop("color", TEXT), ha=style.pop("ha", "center"), **style)


def draw() -> bytes:
    """The diagram as SVG bytes (no date in it: the same code draws the same file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "pipeline", "font.family": "sans-serif"}):
        figure = plt.figure(figsize=(8.5, 5.1))
        axes = figure.add_axes((0, 0, 1, 1))
        axes.set_xlim(0, WIDTH)
        axes.set_ylim(0, HEIGHT)
        axes.axis("off")
        draw_month(axes)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(figure)
    return buffer.getvalue().encode()


def draw_month(axes) -> None:
    # The task run around the steps: what the UI shows as one row of the run.
    box(axes, 14.5, 31, 84, 27, "#fafafa", "#9e9e9e", lw=1, linestyle="--")
    label(
        axes,
        16,
        55,
        "task run month-yellow-2025-01 (etl-month): one per month, in the taxi_etl flow run",
        9,
        ha="left",
        fontweight="bold",
        color=MUTED,
    )

    box(axes, 0.8, 35, 11.5, 10, "white", MUTED)
    label(axes, 6.55, 41.8, "source", 9, fontweight="bold")
    label(axes, 6.55, 36.6, "yellow_tripdata\n_2025-01\n.parquet", 7, color=MUTED, linespacing=1.1)
    arrow(axes, (12.3, 40), (16, 40))

    width, gap, left, bottom, height = 13.0, 3.5, 16.0, 34.0, 12.0
    for index, (name, what) in enumerate(STEPS):
        x = left + index * (width + gap)
        box(axes, x, bottom, width, height, STEP_COLOUR, STEP_EDGE, lw=1.3)
        label(axes, x + width / 2, bottom + height - 2.6, name, 10, fontweight="bold")
        wrapped = "\n".join(textwrap.wrap(what, 17))
        label(axes, x + width / 2, bottom + 1.0, wrapped, 7, color=MUTED, va="bottom", linespacing=1.15)
        if index:
            arrow(axes, (x - gap, bottom + height / 2), (x, bottom + height / 2))
    label(axes, left + 3 * (width + gap) - gap / 2, bottom + height / 2 + 0.8, "clean", 6.5, color=TRIPS_EDGE)

    # The quarantined rows leave validate and bypass transform.
    validate_x, load_x = left + 2 * (width + gap), left + 4 * (width + gap)
    axes.plot(
        [validate_x + 9, validate_x + 9, load_x + 4], [bottom + height, 49.5, 49.5], color=QUARANTINE_EDGE, lw=1.3
    )
    arrow(axes, (load_x + 4, 49.5), (load_x + 4, bottom + height), QUARANTINE_EDGE)
    label(axes, (validate_x + load_x) / 2 + 6.5, 50.3, "failing rows, each with its reason", 7.5, color=QUARANTINE_EDGE)

    # The two tables and the commit order.
    quarantine_x, trips_x, table_y, table_w, table_h = 31.0, 64.0, 3.0, 22.0, 15.0
    cylinder(axes, quarantine_x, table_y, table_w, table_h, QUARANTINE_COLOUR, QUARANTINE_EDGE)
    cylinder(axes, trips_x, table_y, table_w, table_h, TRIPS_COLOUR, TRIPS_EDGE)
    for x, name, rows, log in (
        (quarantine_x, "quarantine", "failing rows + reason", "commit: version q"),
        (trips_x, "trips", "clean rows + derived columns", "commit: version t,\nquarantine_version = q"),
    ):
        label(axes, x + table_w / 2, table_y + table_h - 4.0, name, 10, fontweight="bold")
        label(axes, x + table_w / 2, table_y + table_h - 8.7, f"Delta table:\n{rows}", 7, color=MUTED)
        label(axes, x + table_w / 2, table_y + 1.2, log, 7.5, fontfamily="monospace", linespacing=1.2)

    arrow(axes, (load_x + 3, bottom), (quarantine_x + table_w - 3, table_y + table_h + 1.5), QUARANTINE_EDGE)
    label(axes, 65.5, 26.5, "1  commit quarantine\n(the month replaced)", 7.5, color=QUARANTINE_EDGE, ha="right")
    arrow(axes, (load_x + 9, bottom), (trips_x + table_w / 2 + 2, table_y + table_h + 1.5), TRIPS_EDGE)
    label(axes, 85.5, 25.5, "2  then commit trips,\nrecording version q", 7.5, color=TRIPS_EDGE, ha="left")
    arrow(
        axes,
        (trips_x, table_y + table_h / 2),
        (quarantine_x + table_w, table_y + table_h / 2),
        MUTED,
        linestyle=(0, (3, 2)),
    )
    label(axes, (quarantine_x + table_w + trips_x) / 2, table_y + table_h / 2 + 1.2, "pairs with q", 7, color=MUTED)

    notes = (
        "The commit. Each commit replaces\n"
        "one month (service, year, month)\n"
        "and carries the run's lineage and\n"
        "the month's write id. A reader\n"
        "starts from trips and reads the\n"
        "quarantine version it records: a\n"
        "crash between 1 and 2 leaves the\n"
        "previous month's pair readable."
    )
    label(axes, 1.5, 4.0, notes, 7.8, ha="left", va="bottom", linespacing=1.35)
