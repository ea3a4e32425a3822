"""Reading a `taxi_etl` run back from the Prefect API, for the tests that check what the UI shows.

The server writes task runs and logs from events and batches a moment after the flow returned, so each reader
waits (`tests.polling.eventually`) until what it reads has settled.
"""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import TaskRun
from prefect.events.worker import EventsWorker

from tests.polling import eventually


def run_ids_of(flow_run_id: UUID) -> list[UUID]:
    """A flow run and its subflows' runs (a lesson's flow may run one; `taxi_etl` runs none)."""
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
    return [flow_run_id, *(run.id for run in children)]


def task_runs_of(state, timeout: float = 120) -> list[TaskRun]:
    """The task runs of a flow run (its own and any subflow's), once the server has recorded them all."""
    return settled_task_runs(run_ids_of(state.state_details.flow_run_id), timeout)


def settled_task_runs(flow_run_ids: list[UUID], timeout: float = 120) -> list[TaskRun]:
    """The task runs of these flow runs, once the server has recorded them all: this process's events are sent
    first, then the server's task-run recorder is waited for until two reads in a row find the same task runs,
    each in a final state. (Every final state alone is not enough: the recorder may not have created the last
    task run yet while the earlier ones are final.)"""
    EventsWorker.drain_all()
    previous: set = set()

    def settled() -> list[TaskRun]:
        nonlocal previous
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))
        current = {(run.id, run.state_type) for run in runs}
        unchanged, previous = current == previous, current
        final = runs and all(run.state and run.state.is_final() for run in runs)
        return runs if final and unchanged else []

    return eventually(settled, "every task run of the flow runs recorded in a final state", timeout)


def log_messages_of(flow_run_id: UUID, until: str, timeout: float = 60) -> list[str]:
    """The log messages of a flow run and its subflows as the server stored them, once `until` is among them."""

    def messages() -> list[str]:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids_of(flow_run_id))))
        found = [log.message for log in logs]
        return found if any(until in message for message in found) else []

    return eventually(messages, f"a log message with {until!r}", timeout)
