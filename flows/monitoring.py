"""Lesson 7: monitoring a pipeline with what Prefect 3 and Prometheus really provide.

Three questions a team asks of a pipeline: how long did each step take and what did it cost, is it getting slower,
and what is the bottleneck. This lesson runs `taxi_etl` on the committed sample and answers each from what the run
left behind, with the project's one monitoring mechanism:

- Per-task figures. `@metered` (`tasks/observe/metrics.py`) adds state hooks to a task: when a task run starts it
notes the
  process's CPU time; when it ends it records wall and CPU seconds, the process's peak RSS, rows and bytes in and
  out, and retries. `@monitored` (`tasks/observe/metrics_publish.py`) adds flow hooks that gather a run's records (from
  its threads and its Dask workers) and publish them: the table artifact `taxi-task-metrics`, log lines, and
  Prefect events `taxi.month.loaded`, `taxi.month.failed`, `taxi.quarantine.high` related to the run. The lesson
  reads the records and the events back from the API, as a dashboard or an automation would.
- Prometheus. With `TAXI_PUSHGATEWAY_URL` set (`make monitor` starts a Pushgateway and Prometheus), each
  `taxi_etl` run pushes its figures when it ends (`tasks/observe/prometheus.py`): a batch job is over before any scrape
  would find it. `monitoring/` holds the Prometheus config, alert rules with unit tests and a Grafana dashboard.
- Run history. `perf-report` (`flows/perf_report.py`) reads the last runs' task runs from the API and names the
  step with the largest share of the newest run's wall time, with regressions against each step's rolling median.

When it helps: from the first scheduled deployment on; a run's own page shows one run, these show all of them.
What it costs: hooks run in the task's process (a few milliseconds per task run, measured by the benchmark's
`monitoring_overhead` row) and one artifact and a few events per flow run; the Pushgateway push is one HTTP call.

What popular write-ups claim, and what Prefect 3.9 really has (none of the four exists):

| claimed | in Prefect 3 |
|---|---|
| `Flow.monitor()` | no such method: state hooks (`on_completion`, `on_failure`, `on_crashed`) on flows and tasks |
| `task.timer` | no such attribute: a task run's `start_time`, `end_time`, `total_run_time` from the API; `@metered` |
| `prefect.tasks.prometheus.PrometheusTask` | Prefect 1's task library is gone: `prometheus_client.push_to_gateway` |
| `PREFECT_API_ENABLE_PROMETHEUS` | `PREFECT_SERVER_METRICS_ENABLED=true` serves the server's own `/api/metrics` |

Run it: `python -m flows.monitoring` (the sample, on a temporary server unless `PREFECT_API_URL` is set).

Course page: `docs/monitoring.md` (`make docs` builds the site).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.events.schemas.events import ReceivedEvent

from flows.etl import taxi_etl
from flows.perf_report import read_history
from tasks import settings
from tasks.observe.lesson_report import publish_lesson_table
from tasks.observe.metrics_publish import monitored
from tasks.observe.perf_history import bottleneck, step_stats

ARTIFACT_KEY = "lesson-monitoring"
MONTH_EVENTS = ["taxi.month.loaded", "taxi.month.failed", "taxi.quarantine.high"]
EVENT_WAIT_SECONDS = 30  # the server stores events in batches, a moment after they are sent


def run_events(
    flow_run_id: UUID | str, names: list[str], expected: int, wait_seconds: float = EVENT_WAIT_SECONDS
) -> list[ReceivedEvent]:
    """The events named `names` related to a flow run, read back from the server, once `expected` of them are
    stored or `wait_seconds` have passed (the server stores events in batches, a moment after they are sent)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        event_filter = EventFilter(  # built each time: its time window ends when it is built
            event=EventNameFilter(name=names), related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"])
        )
        with get_client(sync_client=True) as client:
            events = client.read_events(filter=event_filter, limit=50).events
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def month_events_of(flow_run_id: UUID, expected: int) -> list[dict[str, Any]]:
    """The month events of a `taxi_etl` run, as plain rows: event name, resource and payload."""
    events = run_events(flow_run_id, MONTH_EVENTS, expected)
    return [{"event": event.event, "resource": event.resource.id, **event.payload} for event in events]


@monitored
@flow(name="lesson-monitoring")
def monitoring_lesson(service: str = "yellow", last_runs: int = 5, output: str | None = None) -> dict[str, Any]:
    """Run `taxi_etl` on the sample (into `output`, default the lesson's own folder), then read back what
    monitoring recorded: per-task figures, month events, and the bottleneck over the last `last_runs` runs.
    Publishes the `lesson-monitoring` table."""
    root = output or settings.lesson_output_root("monitoring")
    state = taxi_etl(service=service, output=root, return_state=True)
    summary = state.result()  # raises if taxi_etl failed: nothing to read back
    if not isinstance(summary, dict):
        raise RuntimeError(f"taxi_etl ended {state.type.value}: {state.message}")
    tasks = summary["tasks"]
    months = [row for row in tasks if row["task"] == "etl-month"]
    etl_run_id = state.state_details.flow_run_id
    if etl_run_id is None:
        raise RuntimeError("taxi_etl left no flow run id in its state")
    events = month_events_of(etl_run_id, expected=len(months))
    history = read_history("taxi_etl", last_runs)
    stats = step_stats(history.rows)
    slowest = bottleneck(stats)
    rows = [
        {
            "task run": row["task_run"],
            "wall s": row["wall_seconds"],
            "CPU s": row["cpu_seconds"],
            "peak RSS MiB": round(row["peak_rss_bytes"] / 2**20, 1),
            "rows in": row["rows_in"],
            "rows out": row["rows_out"],
            "quarantined": row["rows_quarantined"],
            "retries": row["retries"],
            "events": ", ".join(e["event"] for e in events if e["resource"].endswith(f".{service}.{row['month']}")),
        }
        for row in tasks
    ]
    publish_lesson_table(
        ARTIFACT_KEY,
        rows,
        f"taxi_etl on the {service} sample: per-task metrics and month events; bottleneck over the last "
        f"{history.runs} run(s): {slowest}",
    )
    return {
        "tasks": tasks,
        "events": events,
        "bottleneck": slowest,
        "runs_read": history.runs,
        "pushgateway": settings.pushgateway_url() or "",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.monitoring", description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", choices=settings.SERVICES, default="yellow")
    parser.add_argument("--last-runs", type=int, default=5, help="taxi_etl runs the bottleneck is computed over")
    args = parser.parse_args(argv)
    outcome = monitoring_lesson(args.service, args.last_runs)
    for row in outcome["tasks"]:
        print(
            f"{row['task_run']:28} {row['wall_seconds']:7.2f} s wall {row['cpu_seconds']:7.2f} s CPU "
            f"{row['peak_rss_bytes'] / 2**20:8.1f} MiB peak  {row['rows_in']:>9,} rows in"
        )
    for event in outcome["events"]:
        print(f"event {event['event']} on {event['resource']}: {json.dumps(event, default=str)[:100]}")
    print(f"bottleneck over the last {outcome['runs_read']} taxi_etl run(s): {outcome['bottleneck']}")
    print(
        f"pushed to {outcome['pushgateway']}"
        if outcome["pushgateway"]
        else "no push: make monitor, then source .run/monitor.env"
    )


if __name__ == "__main__":
    main()
