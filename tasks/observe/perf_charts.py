"""The perf report's charts: a Gantt chart of one run's task runs and the trend of each step over runs (PNG).

matplotlib is the `bench` extra (`pip install -e '.[bench]'`); it is imported when a chart is drawn, so reading
history and the tables work without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from tasks.observe.perf_history import Regression, TaskRunRow


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a worker
    import matplotlib.pyplot as plt

    return plt


def draw_gantt(rows: Sequence[TaskRunRow], path: Path) -> Path:
    """One bar per task run on its lane (worker or thread slot), seconds from the run's start, coloured by step:
    months side by side show whether the run used its workers, and where it waited."""
    plt = _pyplot()
    lanes = sorted({row.lane for row in rows})
    steps = sorted({row.step for row in rows})
    colours = {step: plt.get_cmap("tab10")(index % 10) for index, step in enumerate(steps)}
    origin = min((row.run_started for row in rows), default=0.0)
    figure, axes = plt.subplots(figsize=(10, 1.2 + 0.6 * max(1, len(lanes))))
    span = max([row.run_seconds for row in rows] + [row.ended - origin for row in rows] + [1.0])
    for row in rows:
        lane = lanes.index(row.lane)
        axes.barh(lane, max(row.seconds, 0.01), left=row.started - origin, color=colours[row.step], edgecolor="black")
        if row.seconds >= 0.15 * span:  # a name only where it fits; the legend names the short ones' steps
            axes.text(row.started - origin, lane, f" {row.task_run}", va="center", fontsize=7)
    # From 0 to the run's end: the gaps before, between and after task runs are the flow's own time.
    axes.set_xlim(0, span * 1.02)
    axes.axvline(rows[0].run_seconds if rows else span, color="grey", linestyle="--", label="flow run ended")
    axes.set_yticks(range(len(lanes)), lanes)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the flow run started")
    title = rows[0].flow_run_name if rows else "no task runs"
    axes.set_title(f"Task runs of {title}")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[step]) for step in steps]
    axes.legend([*handles, plt.Line2D([], [], color="grey", linestyle="--")], [*steps, "flow run ended"], fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def draw_trend(trend: Mapping[str, Sequence[tuple[float, float]]], flagged: Sequence[Regression], path: Path) -> Path:
    """Busy seconds of each step per run, oldest to newest, with the regressions flagged as red rings."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10, 4))
    for step, points in sorted(trend.items()):
        times = [datetime.fromtimestamp(when, UTC) for when, _ in points]
        axes.plot(times, [seconds for _, seconds in points], marker="o", label=step)
    for regression in flagged:
        for when, seconds in trend.get(regression.step, []):
            if seconds == regression.seconds:  # the same float: both come from `step_busy_by_run`
                axes.scatter([datetime.fromtimestamp(when, UTC)], [seconds], s=180, facecolors="none", edgecolors="red")
    axes.set_ylabel("busy seconds per run")
    axes.set_title("Each step over the last runs (red ring: slower than its rolling median)")
    axes.legend(fontsize=7)
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
