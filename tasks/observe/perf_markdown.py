"""The perf report as markdown: the Prefect artifact `perf-report` and `reports/perf/perf-report.md`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tasks.observe.perf_history import History, Regression, StepStats, quarantine_by_month, untracked_share


def render_report(
    history: History,
    stats: Sequence[StepStats],
    flagged: Sequence[Regression],
    latest_run: str,
    charts: Mapping[str, str],
    *,
    window: int,
    factor: float,
) -> str:
    """Bottleneck first, then the step table, the regressions, quarantine and the links to charts and Dask."""
    names = {row.flow_run_id: row.flow_run_name for row in history.rows}
    runs = len({row.flow_run_id for row in history.rows})
    lines = [f"# Performance of the last {runs} run(s)", ""]
    if not stats:
        return "\n".join([*lines, "No finished run with task runs was found."])
    lines += [
        f"Newest run: `{names[latest_run]}`. **Bottleneck: `{stats[0].step}`**, "
        f"{stats[0].latest_share:.0%} of that run's wall time.",
        "",
        "| step | task runs | p50 s | p95 s | max s | share of wall time (median) | share (newest run) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {s.step} | {s.task_runs} | {s.p50_seconds:.2f} | {s.p95_seconds:.2f} | {s.max_seconds:.2f} "
            f"| {s.median_share:.0%} | {s.latest_share:.0%} |"
            for s in stats
        ),
        "",
        "Share: the time at least one task run of the step was running, over the flow run's wall time (months",
        f"side by side count once). In the newest run, {untracked_share(history.rows, latest_run):.0%} of the wall "
        "time was outside every task run: the flow's own code, starting its task runner, orchestration.",
        "",
        f"## Regressions (a step over {factor:g}x its median of the previous {window} runs)",
        "",
    ]
    if flagged:
        lines += ["| step | run | seconds | rolling median | ratio | newest run |", "|---|---|---:|---:|---:|---|"]
        lines += [
            f"| {r.step} | `{names[r.flow_run_id]}` | {r.seconds:.2f} | {r.baseline_seconds:.2f} | {r.ratio:.1f}x "
            f"| {'**yes**' if r.flow_run_id == latest_run else ''} |"
            for r in flagged
        ]
    else:
        lines.append("None.")
    quarantine = quarantine_by_month(history.records)
    lines += ["", "## Quarantine by month and reason", ""]
    if quarantine:
        lines += ["| service | month | reason | rows | rate |", "|---|---|---|---:|---:|"]
        lines += [
            f"| {q['service']} | {q['month']} | {q['reason']} | {q['rows']:,} | {q['rate']:.2%} |" for q in quarantine
        ]
    elif history.records:
        lines.append("No row was quarantined.")
    else:
        lines.append("No run carried the `taxi-task-metrics` artifact: quarantine figures need it.")
    lines += ["", "## Files", "", "- [task-runs.csv](task-runs.csv): every task run above"]
    lines += [f"- ![{name}]({file})" for name, file in charts.items()]
    for key, link in history.links.items():
        lines.append(f"- {key.replace('-', ' ').capitalize()}: {link}")
    return "\n".join(lines) + "\n"
