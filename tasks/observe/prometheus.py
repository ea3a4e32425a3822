"""One flow run's metrics, pushed to a Prometheus Pushgateway at the end of the run.

A batch run lives for seconds to minutes: Prometheus, which pulls every 15 s or so, would rarely catch it alive, and
never at the moment its figures are final. So the run pushes its figures once, at its end, to a Pushgateway, which
keeps the last push of each *group* and lets Prometheus scrape it at leisure (scraped with `honor_labels: true`, so
the labels pushed here are kept, see monitoring/prometheus.yml).

The group is job="taxi" + flow + deployment + service: each push replaces the previous run's figures of the same
group. A run id must never be in it: the Pushgateway keeps every group forever, so one group per run would grow
without bound (and every run would be a new set of series in Prometheus).

Two parts, so the figures can be checked without a server: `build_registry` turns the per-task records of the
monitoring contract (`tasks/observe/metrics.py`, one row per task run) into a `CollectorRegistry`; `push_run_metrics`
pushes
it. The months of one run are aggregated per task name: seconds, rows, bytes and retries are summed, peak RSS is the
largest. Names follow Prometheus conventions: `taxi_` prefix, base units in the name, `_total` only on counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, push_to_gateway, pushadd_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

JOB = "taxi"
RUN_LABELS = ("flow", "deployment", "service")
TASK_LABELS = (*RUN_LABELS, "task")
LAST_SUCCESS = "taxi_last_success_timestamp_seconds"
PUSH_TIMEOUT_SECONDS = 10


@dataclass
class TaskTotals:
    """One task name's figures over the months of a run."""

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    retries: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {"in": 0, "clean": 0, "quarantined": 0})
    bytes: dict[str, int] = field(default_factory=lambda: {"read": 0, "written": 0})

    def add(self, row: Mapping) -> None:
        self.wall_seconds += float(row.get("wall_seconds") or 0)
        self.cpu_seconds += float(row.get("cpu_seconds") or 0)
        self.peak_rss_bytes = max(self.peak_rss_bytes, int(row.get("peak_rss_bytes") or 0))
        self.retries += int(row.get("retries") or 0)
        for kind, column in (("in", "rows_in"), ("clean", "rows_out"), ("quarantined", "rows_quarantined")):
            self.rows[kind] += int(row.get(column) or 0)
        for direction in ("read", "written"):
            self.bytes[direction] += int(row.get(f"bytes_{direction}") or 0)


def totals_by_task(rows: Sequence[Mapping]) -> dict[str, TaskTotals]:
    """The records of one run summed per task name (`etl-month` once, however many months ran)."""
    totals: dict[str, TaskTotals] = {}
    for row in rows:
        totals.setdefault(str(row["task"]), TaskTotals()).add(row)
    return totals


@dataclass(frozen=True, eq=False)  # hashed by identity: the registry keys collectors by them
class RunMetrics(Collector):
    """The metric families of one flow run; registered in a `CollectorRegistry` of its own."""

    rows: Sequence[Mapping]
    flow: str
    deployment: str
    service: str
    succeeded: bool
    run_seconds: float
    finished_at: float

    def collect(self) -> Iterator[Metric]:
        run = [self.flow, self.deployment, self.service]
        per_task = {
            "taxi_task_duration_seconds": "Wall-clock seconds of a step in the last run (its months summed).",
            "taxi_task_cpu_seconds": "CPU seconds of a step in the last run (its months summed).",
            "taxi_task_peak_rss_bytes": "Largest peak resident memory of the processes that ran a step.",
            "taxi_task_retries": "Retries of a step in the last run (its months summed).",
            "taxi_quarantine_ratio": "Quarantined rows / rows in, of a step that read rows, in the last run.",
        }
        gauges = {name: GaugeMetricFamily(name, text, labels=TASK_LABELS) for name, text in per_task.items()}
        rows = CounterMetricFamily(
            "taxi_rows", "Rows a step handled in the last run, by kind.", labels=(*TASK_LABELS, "kind")
        )
        moved = CounterMetricFamily(
            "taxi_bytes", "Bytes a step read or wrote in the last run.", labels=(*TASK_LABELS, "direction")
        )
        for task, totals in sorted(totals_by_task(self.rows).items()):
            labels = [*run, task]
            gauges["taxi_task_duration_seconds"].add_metric(labels, totals.wall_seconds)
            gauges["taxi_task_cpu_seconds"].add_metric(labels, totals.cpu_seconds)
            gauges["taxi_task_peak_rss_bytes"].add_metric(labels, totals.peak_rss_bytes)
            gauges["taxi_task_retries"].add_metric(labels, totals.retries)
            if totals.rows["in"]:
                gauges["taxi_quarantine_ratio"].add_metric(labels, totals.rows["quarantined"] / totals.rows["in"])
            for kind, count in totals.rows.items():
                rows.add_metric([*labels, kind], count)
            for direction, count in totals.bytes.items():
                moved.add_metric([*labels, direction], count)
        yield from gauges.values()
        yield rows
        yield moved
        yield _run_gauge("taxi_run_duration_seconds", "Wall-clock seconds of the last flow run.", run, self.run_seconds)
        yield _run_gauge(
            "taxi_last_run_succeeded", "1 if the last flow run completed, 0 if it failed.", run, int(self.succeeded)
        )
        if self.succeeded:
            yield _run_gauge(LAST_SUCCESS, "Unix time the last successful flow run ended.", run, self.finished_at)


def _run_gauge(name: str, documentation: str, labels: list[str], value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=RUN_LABELS)
    gauge.add_metric(labels, value)
    return gauge


def build_registry(
    rows: Sequence[Mapping],
    *,
    flow: str,
    deployment: str,
    service: str,
    succeeded: bool,
    run_seconds: float,
    finished_at: float,
) -> CollectorRegistry:
    """A registry holding one run's metrics, and nothing else (not this process's own metrics).

    `taxi_last_success_timestamp_seconds` is only present when the run `succeeded`.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunMetrics(rows, flow, deployment, service, succeeded, run_seconds, finished_at))
    return registry


def grouping_key(flow: str, deployment: str, service: str) -> dict[str, str]:
    """The Pushgateway group of a run: one per flow, deployment and service, never per run."""
    return {"flow": flow, "deployment": deployment, "service": service}


def push_run_metrics(
    gateway_url: str,
    rows: Sequence[Mapping],
    *,
    flow: str,
    deployment: str,
    service: str,
    succeeded: bool,
    run_seconds: float,
) -> None:
    """Push one flow run's metrics to the Pushgateway at `gateway_url` (raises on an unreachable gateway: the
    caller decides that a failed push is only a warning).

    A successful run replaces its group whole (HTTP PUT). A failed run replaces only the metrics it pushes
    (HTTP POST) and so leaves `taxi_last_success_timestamp_seconds` of the last good run in place: a PUT would
    delete it, and the alert on a deployment with no success in 35 days could then never fire.
    """
    registry = build_registry(
        rows,
        flow=flow,
        deployment=deployment,
        service=service,
        succeeded=succeeded,
        run_seconds=run_seconds,
        finished_at=time.time(),
    )
    push = push_to_gateway if succeeded else pushadd_to_gateway
    push(
        gateway_url,
        job=JOB,
        registry=registry,
        grouping_key=grouping_key(flow, deployment, service),
        timeout=PUSH_TIMEOUT_SECONDS,
    )
