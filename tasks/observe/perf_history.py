"""Run history, analysed: where the time of `taxi_etl` goes, which step is the bottleneck, and what got slower.

Plain functions over plain rows, so each answer can be unit-tested on a handful of dicts and recomputed from a CSV.
`flows/perf_report.py` builds the rows from the Prefect API (one row per task run, `TaskRunRow`) and from the
`taxi-task-metrics` artifact when a run has one (the monitoring contract's records: rows, quarantine by reason).

A *step* is what a task run does, whatever its month: `etl-month` for `month-yellow-2025-01` and
`month-yellow-2025-02`, `publish-summary` for `publish-summary-yellow`. Months run side by side, so a step's
seconds in a run are its *busy* seconds, the length of the union of its task runs' intervals: two 10 s months on
two threads make 10 s of the run's wall time, not 20. That is what a user waits for, and what the share of wall
time and the regressions are computed on.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# The project's Prefect 3 task keys are `<function qualname>-<hash of its source>`: the step is the function name.
_TASK_KEY_HASH = re.compile(r"-[0-9a-f]{6,}$")


def step_of(task_key: str) -> str:
    """The step a task run belongs to, from its task key: `etl_month-1a2b3c4d` -> `etl-month`."""
    return _TASK_KEY_HASH.sub("", task_key).rsplit(".", 1)[-1].replace("_", "-")


@dataclass(frozen=True)
class TaskRunRow:
    """One task run of a flow run: the CSV's row. Times are epoch seconds; `lane` is the thread or worker slot."""

    flow_run_id: str
    flow_run_name: str
    run_started: float
    run_seconds: float  # the flow run's wall time
    step: str
    task_run: str
    state: str
    started: float
    seconds: float
    lane: str = ""
    worker: str = ""  # the Dask worker or thread it ran on, when the metrics record says so

    @property
    def ended(self) -> float:
        return self.started + self.seconds


@dataclass
class History:
    """What the report reads for the runs it covers: task-run rows, the metrics records, and link artifacts.
    (A dataclass here, not in the flow's module: `prefect deploy` loads an entrypoint without registering it.)"""

    rows: list[TaskRunRow] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # artifact key -> link, the newest run's first
    runs: int = 0


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of `(start, end)` intervals: the wall time during which at least one of them ran."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0..1) by linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def runs_in_order(rows: Iterable[TaskRunRow]) -> list[tuple[str, float, float]]:
    """`(flow_run_id, run_started, run_seconds)` of every run the rows cover, oldest first."""
    runs = {row.flow_run_id: (row.flow_run_id, row.run_started, row.run_seconds) for row in rows}
    return sorted(runs.values(), key=lambda run: run[1])


def step_busy_by_run(rows: Iterable[TaskRunRow]) -> dict[str, dict[str, float]]:
    """`{step: {flow_run_id: busy seconds}}`: each step's share of each run, months side by side counted once."""
    intervals: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        intervals[row.step][row.flow_run_id].append((row.started, row.ended))
    return {step: {run: busy_seconds(spans) for run, spans in by_run.items()} for step, by_run in intervals.items()}


@dataclass(frozen=True)
class StepStats:
    """One step over the runs read: task-run seconds (p50, p95, max), and its busy share of the runs' wall time."""

    step: str
    task_runs: int
    p50_seconds: float
    p95_seconds: float
    max_seconds: float
    median_share: float  # of the runs' wall time, median over runs
    latest_share: float  # in the newest run (0 when the step did not run there)


def step_stats(rows: Sequence[TaskRunRow]) -> list[StepStats]:
    """Statistics per step, the heaviest (by its share of the newest run, then by median share) first."""
    runs = runs_in_order(rows)
    if not runs:
        return []
    latest_run = runs[-1][0]
    wall = {run_id: seconds for run_id, _, seconds in runs}
    busy = step_busy_by_run(rows)
    seconds_by_step: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        seconds_by_step[row.step].append(row.seconds)
    stats = []
    for step, seconds in seconds_by_step.items():
        shares = [busy[step][run] / wall[run] for run in busy[step] if wall[run] > 0]
        stats.append(
            StepStats(
                step=step,
                task_runs=len(seconds),
                p50_seconds=percentile(seconds, 0.5),
                p95_seconds=percentile(seconds, 0.95),
                max_seconds=max(seconds),
                median_share=statistics.median(shares) if shares else 0.0,
                latest_share=busy[step].get(latest_run, 0.0) / wall[latest_run] if wall[latest_run] > 0 else 0.0,
            )
        )
    return sorted(stats, key=lambda s: (s.latest_share, s.median_share), reverse=True)


def untracked_share(rows: Sequence[TaskRunRow], flow_run_id: str) -> float:
    """The share of a run's wall time during which none of its task runs ran: the flow's own work between tasks,
    starting its task runner, and Prefect's orchestration. Large on small inputs, small on big ones."""
    mine = [row for row in rows if row.flow_run_id == flow_run_id]
    if not mine or mine[0].run_seconds <= 0:
        return 0.0
    return max(0.0, 1 - busy_seconds((row.started, row.ended) for row in mine) / mine[0].run_seconds)


def bottleneck(stats: Sequence[StepStats]) -> str | None:
    """The step that took the largest share of the newest run's wall time: where shortening it shortens the run."""
    return stats[0].step if stats else None


@dataclass(frozen=True)
class Regression:
    """A run in which a step took `ratio` times its rolling median over the runs before it."""

    step: str
    flow_run_id: str
    seconds: float
    baseline_seconds: float
    ratio: float


def regressions(
    rows: Sequence[TaskRunRow],
    *,
    window: int = 5,
    factor: float = 1.5,
    min_increase_seconds: float = 0.5,
    min_history: int = 2,
) -> list[Regression]:
    """Runs in which a step's busy seconds exceeded `factor` x the median of its previous `window` runs.

    A median, not a mean, so one earlier outlier does not hide the next regression; at least `min_history`
    earlier runs, so the first runs of a step are never flagged; and at least `min_increase_seconds` slower, so a
    0.05 s step that takes 0.1 s once is not news.
    """
    order = [run_id for run_id, _, _ in runs_in_order(rows)]
    found = []
    for step, by_run in step_busy_by_run(rows).items():
        series = [(run_id, by_run[run_id]) for run_id in order if run_id in by_run]
        for index in range(min_history, len(series)):
            run_id, seconds = series[index]
            baseline = statistics.median(value for _, value in series[max(0, index - window) : index])
            if seconds > factor * baseline and seconds - baseline >= min_increase_seconds:
                ratio = seconds / baseline if baseline > 0 else float("inf")
                found.append(Regression(step, run_id, seconds, baseline, ratio))
    return found


def step_trend(rows: Sequence[TaskRunRow]) -> dict[str, list[tuple[float, float]]]:
    """`{step: [(run_started, busy seconds), ...]}` oldest first: what the trend chart draws."""
    started = {run_id: when for run_id, when, _ in runs_in_order(rows)}
    return {
        step: sorted((started[run], seconds) for run, seconds in by_run.items())
        for step, by_run in step_busy_by_run(rows).items()
    }


def assign_lanes(rows: Sequence[TaskRunRow]) -> list[TaskRunRow]:
    """The rows with `lane` set to a slot on which they ran side by side: their worker when known, otherwise the
    first free slot in start order (interval partitioning: as many slots as runs overlapped, like the threads)."""
    ends: list[float] = []
    placed = []
    for row in sorted(rows, key=lambda r: r.started):
        if row.worker:
            placed.append(_with_lane(row, row.worker))
            continue
        free = next((slot for slot, end in enumerate(ends) if end <= row.started), None)
        if free is None:
            ends.append(row.ended)
            free = len(ends) - 1
        ends[free] = row.ended
        placed.append(_with_lane(row, f"slot {free + 1}"))
    return placed


def _with_lane(row: TaskRunRow, lane: str) -> TaskRunRow:
    return TaskRunRow(**{**row.__dict__, "lane": lane})


def quarantine_by_month(records: Iterable[Mapping]) -> list[dict]:
    """Quarantined rows by service, month and reason, with their rate of the month's rows in, from the monitoring
    contract's records (`month`, `service`, `rows_in`, `quarantined_by_reason` as JSON). The newest record of a
    month wins (a month rerun replaces its data); records without a month (not a month's task) are skipped."""
    newest: dict[tuple[str, str], Mapping] = {}
    for record in sorted(records, key=lambda r: float(r.get("started_at") or 0)):
        if record.get("month") and str(record.get("state", "COMPLETED")).upper() == "COMPLETED":
            newest[(str(record.get("service") or ""), str(record["month"]))] = record
    table = []
    for (service, month), record in sorted(newest.items()):
        reasons = record.get("quarantined_by_reason") or "{}"
        reasons = json.loads(reasons) if isinstance(reasons, str) else dict(reasons)
        rows_in = int(record.get("rows_in") or 0)
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            table.append(
                {
                    "service": service,
                    "month": month,
                    "reason": reason,
                    "rows": int(count),
                    "rate": int(count) / rows_in if rows_in else 0.0,
                }
            )
    return table
