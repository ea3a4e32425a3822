"""Where `taxi_etl`'s months run: threads, a Dask LocalCluster, or an existing Dask scheduler (`flows/etl.py`).

Also the two things that only make sense per month: the Dask resource a month occupies and the retry condition of
a month's task run; and `dask_setup`, which readies a Dask worker for months before it takes one.
"""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Literal

import dask
from distributed import Worker
from prefect import Task, get_run_logger
from prefect.artifacts import create_link_artifact
from prefect.client.schemas.objects import TaskRun
from prefect.context import FlowRunContext
from prefect.plugins import load_prefect_collections
from prefect.settings import PREFECT_API_URL
from prefect.states import State
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from tasks import settings
from tasks.retries import retry_if_transient

Runner = Literal["threads", "dask"]
MONTH_RESOURCE = "MONTH"  # the Dask worker resource one month occupies; workers declare MONTH=1
LOCAL_CLUSTER_WORKERS = 2
WORKER_SETUP = __name__  # Dask's `--preload` module of the project's workers: its `dask_setup` readies one


def dask_task_runner(
    address: str | None = None,
    n_workers: int = LOCAL_CLUSTER_WORKERS,
    resources: dict[str, float] | None = None,
    performance_report_path: str | None = None,
) -> DaskTaskRunner:
    """A runner for an existing scheduler at `address`, or a LocalCluster of `n_workers` single-threaded workers
    declaring `resources` (worker processes only when a Prefect API URL is set: without one, every worker process
    would start its own temporary Prefect server). With `performance_report_path`, Dask writes its performance
    report of everything the runner ran there (an HTML file: task stream, worker profiles, bandwidth) when the run
    ends; a LocalCluster then also serves its dashboard on a free loopback port, whose link Prefect logs."""
    if address:
        return DaskTaskRunner(address=address, performance_report_path=performance_report_path)
    api_url = PREFECT_API_URL.value()
    dashboard = "127.0.0.1:0" if performance_report_path else None
    cluster: dict[str, Any] = {"n_workers": n_workers, "threads_per_worker": 1, "dashboard_address": dashboard}
    cluster["preload"] = [WORKER_SETUP]  # each worker readied as it starts (`dask_setup`)
    cluster["processes"] = bool(api_url)
    if api_url:  # the worker processes' own environment (this process's is left alone): they report to the same API
        cluster["env"] = {"PREFECT_API_URL": api_url}
    return DaskTaskRunner(
        cluster_kwargs={**cluster, **({"resources": resources} if resources else {})},
        performance_report_path=performance_report_path,
    )


def month_task_runner(runner: Runner = "threads", dask_address: str | None = None) -> TaskRunner:
    """The task runner the months are mapped over: an existing Dask scheduler, a LocalCluster, or threads."""
    if dask_address or runner == "dask":
        report = settings.dask_performance_report_path()
        return dask_task_runner(dask_address, resources={MONTH_RESOURCE: 1}, performance_report_path=report)
    if runner != "threads":
        raise ValueError(f"runner must be 'threads' or 'dask', not {runner!r}")
    return ThreadPoolTaskRunner(max_workers=settings.month_threads())


def one_month_per_worker() -> AbstractContextManager:
    """`dask.annotate` asking one `MONTH` per month, when the flow's runner is a Dask cluster whose workers declare
    it; otherwise nothing. A task asking for a resource no worker has would wait forever, so on a cluster without
    it the months run unconstrained, with a warning."""
    runner = FlowRunContext.get().task_runner
    if not isinstance(runner, DaskTaskRunner):
        return nullcontext()
    workers = runner.client.scheduler_info().get("workers", {}).values()
    if not any(MONTH_RESOURCE in (worker.get("resources") or {}) for worker in workers):
        get_run_logger().warning(
            "No Dask worker declares the resource %s (start workers with --resources %s=1): a worker may run "
            "several months at once",
            MONTH_RESOURCE,
            MONTH_RESOURCE,
        )
        return nullcontext()
    return dask.annotate(resources={MONTH_RESOURCE: 1})


def publish_dask_links() -> None:
    """On a Dask runner, link Dask's dashboard and its performance report from this flow run (link artifacts
    `dask-dashboard` and `dask-performance-report`, which `perf-report` links in turn) and log them."""
    runner = FlowRunContext.get().task_runner
    if not isinstance(runner, DaskTaskRunner):
        return
    links = {"dask-dashboard": runner.client.dashboard_link}
    if runner.performance_report_path:
        links["dask-performance-report"] = Path(runner.performance_report_path).resolve().as_uri()
    for key, link in links.items():
        if link:
            create_link_artifact(link=link, key=key, description=f"{key.replace('-', ' ')} of this run's months")
            get_run_logger().info("%s: %s", key, link)


def dask_setup(worker: Worker) -> None:
    """Dask's preload hook: `dask worker ... --preload flows.runners` (as `make dask` starts its workers) runs it as a
    worker starts, and again in each process its nanny restarts, before the worker takes a task.

    It does there what the worker's first month would otherwise pay in its own time: import the month's modules
    (unpickling its task imports them) and load Prefect's installed collections, which Prefect does once per process
    when its first task run there builds its context (prefect-aws, and with the dev extras prefect-kubernetes and
    prefect-docker: about 0.8 s). The LocalClusters of `dask_task_runner` run it too."""
    importlib.import_module("tasks.pipeline.month")
    load_prefect_collections()


def retry_month_if_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """`retry_if_transient`, plus the traceback when it declines: Prefect logs a failed task run's traceback only
    once its retries are exhausted, so a month that fails for good on its first try would otherwise leave none."""
    if retry_if_transient(task, task_run, state):
        return True
    error = state.result(raise_on_failure=False)
    get_run_logger().error("Task run failed with exception: %r", error, exc_info=error)
    return False
