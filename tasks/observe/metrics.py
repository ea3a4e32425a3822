"""Per-task metrics: one record per task run, measured by state hooks, wherever the task ran.

Two decorators attach it; nothing else in a flow or task changes:

    @metered                       # on a task: its runs are measured
    @task(name="etl-month")
    def etl_month(...): ...

    @monitored                     # on a flow: its runs publish what their task runs measured
    @flow(name="taxi_etl")
    def taxi_etl(...): ...

Why hooks. Prefect calls them in the process that runs the task, right around it and on every path (a cached run
too), so CPU time and peak memory are that process's own. Wall time, state and retries come from the task run
Prefect holds in memory, rows and bytes from the task's result (a month's `MonthSummary`, a table's row count): no
API call per task.

How a record reaches its flow run. In the flow's own process (direct calls, threads) it waits in memory. A Dask
worker sends it to the scheduler as a Dask event (`Worker.log_event`) before it reports the task finished, on the
same ordered stream, so the flow reads every record back (`Client.get_events`) when it ends. The flow's hooks
(`tasks.observe.metrics_publish`) then publish them. `TAXI_TASK_METRICS=0` at import attaches no hook at all (the
benchmark's `monitoring_overhead` row compares the two).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_logger
from prefect.results import ResultRecord
from prefect.states import State

from tasks import settings
from tasks.observe.peak_memory import peak_rss_bytes
from tasks.redact import redact_text

DASK_TOPIC = "taxi-task-metrics"  # the Dask event topic that carries records from worker processes
MONTH_PATTERN = re.compile(r"^\d{4}-\d{2}$")
KEPT_FLOW_RUNS = 256  # runs whose records wait in memory at most: a run whose flow never collects is dropped


@dataclass
class TaskMetrics:
    """What one task run cost and did (the monitoring contract's fields; `error` stays out of the row)."""

    flow: str
    flow_run_id: str
    deployment: str
    task: str
    task_run: str
    service: str
    month: str
    state: str
    started_at: float
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    retries: int = 0
    quarantined_by_reason: str = "{}"  # JSON of {reason: count}
    error: str = ""  # "<error type>: <message>" of a failed run, for the `taxi.month.failed` event

    def as_row(self) -> dict[str, Any]:
        """The record as the artifact's row (every field but `error`)."""
        row = asdict(self)
        del row["error"]
        return row

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> TaskMetrics:
        names = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in message.items() if name in names})


class RecordStore:
    """Records waiting in this process for their flow run to collect them, keyed by flow run id (thread-safe)."""

    def __init__(self, kept_flow_runs: int = KEPT_FLOW_RUNS) -> None:
        self._records: OrderedDict[str, list[TaskMetrics]] = OrderedDict()
        self._lock = threading.Lock()
        self._kept = kept_flow_runs

    def add(self, flow_run_id: str, records: list[TaskMetrics]) -> None:
        with self._lock:
            self._records.setdefault(flow_run_id, []).extend(records)
            self._records.move_to_end(flow_run_id)
            while len(self._records) > self._kept:
                self._records.popitem(last=False)

    def peek(self, flow_run_id: str) -> list[TaskMetrics]:
        with self._lock:
            return list(self._records.get(flow_run_id, []))

    def pop(self, flow_run_id: str) -> list[TaskMetrics]:
        with self._lock:
            return self._records.pop(flow_run_id, [])


STORE = RecordStore()
_started: dict[str, tuple[float, float, float]] = {}  # task run id -> (epoch, perf counter, process CPU) at start


def note_start(task: Task, task_run: TaskRun, state: State) -> None:
    """`on_running` hook: the clocks at the first attempt (a retry keeps them: wall and CPU cover every try)."""
    _started.setdefault(str(task_run.id), (time.time(), time.perf_counter(), time.process_time()))


def record_task_run(task: Task, task_run: TaskRun, state: State) -> None:
    """`on_completion`/`on_failure` hook: build the run's record and send it towards its flow run.

    CPU seconds are the process's (every thread: polars and pyarrow work on their own pools) while the task ran;
    tasks running side by side in one process share them.
    """
    started = _started.pop(str(task_run.id), None)
    parameters = getattr(TaskRunContext.get(), "parameters", None) or {}
    flow_context = FlowRunContext.get()
    month = str(parameters.get("month", ""))
    record = TaskMetrics(
        flow=flow_context.flow.name if flow_context and flow_context.flow else "",
        flow_run_id=str(task_run.flow_run_id),
        deployment="",
        task=task.name,
        task_run=task_run.name,
        service=str(parameters.get("service", "")),
        month=month if MONTH_PATTERN.match(month) else "",
        state=state.type.value,
        started_at=started[0] if started else (task_run.start_time or state.timestamp).timestamp(),
        wall_seconds=round(time.perf_counter() - started[1], 4) if started else 0.0,
        cpu_seconds=round(time.process_time() - started[2], 4) if started else 0.0,
        peak_rss_bytes=peak_rss_bytes(),
        retries=max(task_run.run_count - 1, 0),
        **data_figures(result_in_memory(state)),
    )
    if state.is_failed():
        error = state.result(raise_on_failure=False)
        error_text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(state.message)
        record.error = redact_text(error_text)  # published in the artifact and the month's event
    deliver(record)


def result_in_memory(state: State) -> Any:
    """The run's result when this process holds it (never read back from result storage: that costs I/O)."""
    if not state.is_completed():
        return None
    return state.data.result if isinstance(state.data, ResultRecord) else None


def data_figures(result: Any) -> dict[str, Any]:
    """Rows and bytes a result reports: a month's summary in full, a table or frame its row count."""
    if hasattr(result, "rows_in") and hasattr(result, "rows_quarantined"):
        return {
            "rows_in": int(result.rows_in),
            "rows_out": int(result.rows_clean),
            "rows_quarantined": int(result.rows_quarantined),
            "quarantined_by_reason": json.dumps(dict(result.quarantined_by_reason), sort_keys=True),
            "bytes_read": int(getattr(result, "bytes_read", 0)),
            "bytes_written": int(getattr(result, "bytes_written", 0)),
        }
    rows = getattr(result, "num_rows", None)  # pyarrow
    if rows is None and hasattr(result, "shape") and hasattr(result, "columns"):  # pandas, polars
        rows = result.shape[0]
    return {"rows_out": int(rows)} if isinstance(rows, int) else {}


def deliver(record: TaskMetrics) -> None:
    """Keep the record for its flow run: in memory here, or as a Dask event when this is a Dask worker."""
    worker = dask_worker()
    if worker is None:
        STORE.add(record.flow_run_id, [record])
    else:
        worker.log_event(DASK_TOPIC, asdict(record))


def dask_worker() -> Any:
    """The Dask worker running this code, or None (Dask is not even imported outside a cluster's processes)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def records_from_dask(flow_run_id: str) -> list[TaskMetrics]:
    """The records Dask workers sent for `flow_run_id`, when the current flow's task runner is a Dask cluster."""
    if "prefect_dask" not in sys.modules:
        return []
    from prefect_dask import DaskTaskRunner

    context = FlowRunContext.get()
    runner = getattr(context, "task_runner", None)
    if not isinstance(runner, DaskTaskRunner) or runner._client is None:  # never started: nothing ran there
        return []
    events = runner.client.get_events(DASK_TOPIC)
    return [TaskMetrics.from_message(message) for _, message in events if message.get("flow_run_id") == flow_run_id]


def current_run_rows() -> list[dict[str, Any]]:
    """The rows recorded so far for the flow run this is called in (its subflows' included once they ended)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return []
    here = {"flow": context.flow.name if context.flow else "", "flow_run_id": str(context.flow_run.id)}
    return [record.as_row() | here for record in STORE.peek(str(context.flow_run.id))]


TaskT = TypeVar("TaskT", bound=Task)

# Prefect logs two INFO lines around every state hook it calls ("Running hook 'note_start' in response to entering
# state 'Running'", "Hook ... finished running successfully"): with hooks on every task, half of a run's console
# and stored log. The filter drops those two lines for this project's metric hooks only; a hook's error still shows.
METRIC_HOOKS = frozenset({"note_start", "record_task_run", "note_flow_start", "publish_task_metrics"})
_HOOK_LINE = re.compile(
    r"^(?:Running hook '(\w+)' in response to entering state|Hook '(\w+)' finished running successfully)"
)


class QuietMetricHooks(logging.Filter):
    """Drops Prefect's INFO lines about calling the metric hooks; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not isinstance(record.msg, str) or "ook '" not in record.msg:
            return True
        line = _HOOK_LINE.match(record.getMessage())
        return not (line and (line.group(1) or line.group(2)) in METRIC_HOOKS)


def quiet_metric_hooks() -> None:
    """Install `QuietMetricHooks` on the Prefect loggers that log hook calls, once per process."""
    for name in ("task_runs", "flow_runs", "engine"):  # a flow's hooks are logged by prefect.engine
        logger = get_logger(name)
        if not any(isinstance(existing, QuietMetricHooks) for existing in logger.filters):
            logger.addFilter(QuietMetricHooks())


def metered(task: TaskT) -> TaskT:
    """Measure every run of `task` (hooks appended to its own; none when `TAXI_TASK_METRICS=0`)."""
    if settings.task_metrics_enabled() and record_task_run not in task.on_completion_hooks:
        # New lists, not appends: a task made by `with_options` shares its hook lists with the original.
        task.on_running_hooks = [*task.on_running_hooks, note_start]
        task.on_completion_hooks = [*task.on_completion_hooks, record_task_run]
        task.on_failure_hooks = [*task.on_failure_hooks, record_task_run]
        quiet_metric_hooks()
    return task
