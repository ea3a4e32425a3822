"""`perf-report`: where the time of the last `taxi_etl` runs went, which step is the bottleneck, what got slower.

It reads run history from the Prefect API, the same server the runs reported to: the last `last_runs` flow runs of
`flow_name`, every task run of each (any subflow's included, paged), and each run's `taxi-task-metrics`
artifact when it has one (rows and quarantine by reason; without it the report works from task-run times alone).
It writes, under `output_dir` (default `reports/perf/`), and publishes the markdown as the artifact `perf-report`:

- `perf-report.md`: per step p50, p95 and max seconds, share of the run's wall time, the bottleneck, the
  regressions against each step's rolling median, quarantine by month and reason, and links to Dask's
  performance report and dashboard when a run left them (link artifacts `dask-performance-report`, `dask-dashboard`);
- `task-runs.csv`: one row per task run, everything the analysis used (`tasks.observe.perf_history.TaskRunRow`);
- `gantt-latest.png` (the newest run's task runs on their workers or thread slots) and `trend.png`.

The `perf-report` deployment runs it each time a `taxi_etl` flow run completes (a deployment trigger in
`prefect.yaml`); the analysis itself is `tasks/observe/perf_history.py`, pure functions over plain rows.

    python -m flows.perf_report --help
    source .run/prefect.env && python -m flows.perf_report --last-runs 10
    python -m flows.perf_report --sample-runs 4 --last-runs 4   # a temporary server: 4 sample runs, then the report
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort

from tasks import settings
from tasks.observe.perf_charts import draw_gantt, draw_trend
from tasks.observe.perf_history import (
    History,
    TaskRunRow,
    assign_lanes,
    bottleneck,
    regressions,
    step_of,
    step_stats,
    step_trend,
)
from tasks.observe.perf_markdown import render_report

METRICS_ARTIFACT = "taxi-task-metrics"  # the monitoring contract's per-run table (tasks/observe/metrics.py)
DASK_LINK_ARTIFACTS = ("dask-performance-report", "dask-dashboard")
REPORT_ARTIFACT = "perf-report"
PERF_REPORT_DIR = settings.PROJECT_ROOT / "reports" / "perf"
PAGE = 200  # the server's default cap on one page of runs


def _paged(read, **filters) -> list:
    """Every item of a paged read (`read(limit=..., offset=...)`)."""
    items, offset = [], 0
    while True:
        page = read(limit=PAGE, offset=offset, **filters)
        items += page
        if len(page) < PAGE:
            return items
        offset += PAGE


def _descendants(client, run_id: UUID) -> list[FlowRun]:
    """The subflow runs under `run_id`, at any depth (a lesson's flow may run one)."""
    found, frontier = [], [run_id]
    while frontier:
        children = _paged(
            client.read_flow_runs,
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier)),
        )
        found += children
        frontier = [child.id for child in children]
    return found


def _json_rows(data) -> list[dict]:
    rows = json.loads(data) if isinstance(data, str) else data
    return [dict(row) for row in rows or []] if isinstance(rows, list) else []


def read_history(flow_name: str = "taxi_etl", last_runs: int = 20) -> History:
    """The last `last_runs` finished runs of `flow_name` (completed or failed) as task-run rows, with their metrics
    records and Dask links when present."""
    history = History()
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED, StateType.FAILED]))
            ),
            sort=FlowRunSort.START_TIME_DESC,
            limit=last_runs,
        )
        history.runs = len(runs)
        for run in runs:
            if run.start_time is None or run.end_time is None:
                continue
            tree = [run, *_descendants(client, run.id)]
            subflow_task_runs = {child.parent_task_run_id for child in tree[1:]}
            ids = [member.id for member in tree]
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[METRICS_ARTIFACT, *DASK_LINK_ARTIFACTS]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=ids),
                )
            )
            records = [r for a in artifacts if a.key == METRICS_ARTIFACT for r in _json_rows(a.data)]
            history.records += records
            for artifact in artifacts:
                if artifact.key in DASK_LINK_ARTIFACTS:
                    history.links.setdefault(artifact.key, str(artifact.data))
            workers = {r.get("task_run"): str(r.get("worker") or "") for r in records}
            task_runs = _paged(
                client.read_task_runs,
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            )
            for task_run in task_runs:
                if task_run.id in subflow_task_runs or not task_run.start_time or not task_run.end_time:
                    continue  # a subflow's placeholder task run, or one that never ran
                history.rows.append(
                    TaskRunRow(
                        flow_run_id=str(run.id),
                        flow_run_name=run.name,
                        run_started=run.start_time.timestamp(),
                        run_seconds=(run.end_time - run.start_time).total_seconds(),
                        step=step_of(task_run.task_key),
                        task_run=task_run.name,
                        state=task_run.state_type.value if task_run.state_type else "",
                        started=task_run.start_time.timestamp(),
                        seconds=(task_run.end_time - task_run.start_time).total_seconds(),
                        worker=workers.get(task_run.name, ""),
                    )
                )
    return history


@task(name="read-run-history", cache_policy=NO_CACHE)
def read_run_history(flow_name: str, last_runs: int) -> History:
    """The runs' task runs, metrics records and Dask links, read from the Prefect API."""
    return read_history(flow_name, last_runs)


@task(name="write-perf-report", cache_policy=NO_CACHE)
def write_perf_report(history: History, output_dir: str, window: int, factor: float) -> dict:
    """Analyse the history, write the markdown, CSV and charts under `output_dir`, publish the markdown artifact;
    returns the figures a caller or a test checks (bottleneck, regressions, per-step statistics)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = step_stats(history.rows)
    flagged = regressions(history.rows, window=window, factor=factor)
    latest_run = max(history.rows, key=lambda row: row.run_started).flow_run_id if history.rows else ""
    latest_rows = assign_lanes([row for row in history.rows if row.flow_run_id == latest_run])
    with open(out / "task-runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(TaskRunRow.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(row) for row in history.rows)
    charts = {}
    if history.rows:
        charts["gantt"] = draw_gantt(latest_rows, out / "gantt-latest.png").name
        charts["trend"] = draw_trend(step_trend(history.rows), flagged, out / "trend.png").name
    markdown = render_report(history, stats, flagged, latest_run, charts, window=window, factor=factor)
    (out / "perf-report.md").write_text(markdown)
    create_markdown_artifact(markdown, key=REPORT_ARTIFACT, description="Where the last taxi_etl runs spent time")
    return {
        "runs": history.runs,
        "latest_run": latest_run,
        "bottleneck": bottleneck(stats),
        "steps": [asdict(s) for s in stats],
        "regressions": [asdict(r) for r in flagged],
        "output_dir": str(out),
    }


@flow(name="perf-report")
def perf_report(
    flow_name: str = "taxi_etl",
    last_runs: int = 20,
    output_dir: str | None = None,
    window: int = 5,
    factor: float = 1.5,
) -> dict:
    """Report on the last `last_runs` runs of `flow_name`: per-step p50/p95/max, share of wall time, the
    bottleneck, regressions (a step over `factor` x its median of the previous `window` runs), quarantine by
    month and reason, a Gantt chart and trends, under `output_dir` (default reports/perf/)."""
    history = read_run_history(flow_name, last_runs)
    result = write_perf_report(history, output_dir or str(PERF_REPORT_DIR), window, factor)
    logger = get_run_logger()
    logger.info("%d run(s) of %s read; bottleneck: %s", result["runs"], flow_name, result["bottleneck"])
    for regression in result["regressions"]:
        if regression["flow_run_id"] == result["latest_run"]:
            logger.warning(
                "%s regressed: %.2f s against a rolling median of %.2f s (%.1fx)",
                regression["step"],
                regression["seconds"],
                regression["baseline_seconds"],
                regression["ratio"],
            )
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.perf_report",
        description="Analyse the last runs of taxi_etl on the Prefect server at $PREFECT_API_URL: per-step times, "
        "the bottleneck, regressions, quarantine by month and reason; writes reports/perf/.",
    )
    parser.add_argument("--flow-name", default="taxi_etl", help="the flow whose runs to read (default: taxi_etl)")
    parser.add_argument("--last-runs", type=int, default=20, metavar="N", help="how many runs to read (default 20)")
    parser.add_argument("--output-dir", metavar="DIR", help=f"where to write (default: {PERF_REPORT_DIR})")
    parser.add_argument("--window", type=int, default=5, help="runs in the rolling median (default 5)")
    parser.add_argument("--factor", type=float, default=1.5, help="slower than this x the median flags (1.5)")
    parser.add_argument(
        "--sample-runs",
        type=int,
        default=0,
        metavar="N",
        help="first run taxi_etl N times on the committed sample (yellow, written under output/sample), so that "
        "there is a history to report on: how reports/perf/ in the repository is made (default 0)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sample_runs:
        from flows.etl import taxi_etl

        for _ in range(args.sample_runs):
            taxi_etl(service="yellow")
    result = perf_report(args.flow_name, args.last_runs, args.output_dir, args.window, args.factor)
    print(f"{result['runs']} run(s) read; bottleneck: {result['bottleneck']}; report in {result['output_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
