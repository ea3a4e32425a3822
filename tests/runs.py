"""Reading a `taxi_etl` run back from the Prefect API, for the tests that check what the UI shows."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import TaskRun


def task_runs_of(state) -> list[TaskRun]:
    """The task runs of a `taxi_etl` run: its own and those of its month-mapping subflow."""
    parent = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
        )
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[parent, *(run.id for run in children)]))
        )
