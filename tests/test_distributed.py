"""Distributed faults: a Dask worker SIGKILLed while it runs a month of `taxi_etl` on an existing scheduler.

Real processes throughout: `servers.start_dask` starts a `dask scheduler` and two `dask worker`s (each a nanny and
its worker process in their own process group, `MONTH=1`) reporting to the session's Prefect test server. The flow
runs several generated months on that cluster, and one worker, nanny and all, is killed with SIGKILL while a month
on it is running (a lost machine: nothing restarts it). The scheduler hands the lost month to the survivor, and the
run must end as a clean run on threads does: completed, with every month's datasets equal, partition by partition.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from uuid import UUID

import pyarrow as pa
import pytest
from distributed import Client
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import StateType, TaskRun
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

import servers
from data.generate import MonthFile, write_months
from flows.etl import taxi_etl, taxi_etl_on
from tasks import settings
from tasks.lake import read_month
from tasks.lake.write_lock import write_lock_name
from tasks.months import Month
from tests.runs import task_runs_of

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

SERVICE = "yellow"
MONTHS = [Month(2024, month) for month in range(1, 5)]
ROWS_PER_MONTH = 300_000  # about 1-2 s a month on a free core, several on a busy one: long enough to be caught
RUN_TIMEOUT_SECONDS = 150  # the whole run, lost month included; a hang fails the test instead of blocking CI


@pytest.fixture(scope="module")
def generated_months(tmp_path_factory) -> str:
    """Four generated yellow months; returns the source template `taxi_etl` reads them by."""
    folder = tmp_path_factory.mktemp("generated")
    write_months([MonthFile(SERVICE, month, ROWS_PER_MONTH, folder) for month in MONTHS], progress=False)
    return str(folder / "{service}_tripdata_{month}.parquet")


@pytest.fixture
def two_workers(tmp_path_factory, monkeypatch):
    """A scheduler and two worker process groups from `servers.start_dask`, their process ids recorded in a
    temporary folder so that `servers.stop` ends exactly these: `(address, {worker address: process group id})`.

    The workers import the pipeline before the run, as a standing cluster's would have: a cold worker spends tens
    of seconds on imports before its first month starts, and the kill must land in a month, not in an import."""
    monkeypatch.setattr(settings, "RUN_DIR", tmp_path_factory.mktemp("run"))
    address = servers.start_dask(PREFECT_API_URL.value())["TAXI_DASK_ADDRESS"]
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            nanny_pids = {int((settings.RUN_DIR / f"dask-worker-{i}.pid").read_text()) for i in range(2)}
            groups = {worker: os.getpgid(pid) for worker, pid in client.run(os.getpid).items()}
            client.run(__import__, "flows.etl")
        assert set(groups.values()) == nanny_pids, "each worker process runs in its nanny's process group"
        yield address, groups
    finally:
        servers.stop()


@dataclass
class Kill:
    """What was killed: the Dask key of the month that was running on the victim, and its Prefect task run."""

    key: str
    task_run_id: UUID
    month: str


def task_run_ids_by_key(client: Client, keys: list[str]) -> dict[str, UUID]:
    """The Prefect task run id of each Dask key (prefect-dask passes it to the worker as a keyword argument)."""

    def read(dask_scheduler, keys=keys):
        tasks = (dask_scheduler.tasks.get(key) for key in keys)
        return {ts.key: str(ts.run_spec.kwargs["task_run_id"]) for ts in tasks if ts is not None and ts.run_spec}

    return {key: UUID(run_id) for key, run_id in client.run_on_scheduler(read).items()}


def write_slot_taken(prefect: SyncPrefectClient, month: str) -> bool:
    """Whether the month's write limit has its slot taken (a limit not created yet has none: it is made on first
    commit)."""
    try:
        limit = prefect.read_global_concurrency_limit_by_name(write_lock_name(SERVICE, Month.parse(month)))
    except ObjectNotFound:
        return False
    return limit.active_slots > 0


def running_month(prefect: SyncPrefectClient, run_id: UUID) -> str | None:
    """The month of task run `run_id` if it is Running (a worker may hold a key before telling Prefect)."""
    try:
        run = prefect.read_task_run(run_id)
    except ObjectNotFound:
        return None
    return run.name.removeprefix(f"month-{SERVICE}-") if run.state_type == StateType.RUNNING else None


def kill_in_a_running_month(address: str, victim: str, group: int, deadline: float) -> Kill:
    """SIGKILL the victim's process group once a month's task run on it is Running, and not while it commits.

    The victim is frozen first (SIGSTOP), so what is read next cannot change under us: if the month's write slot is
    taken, the victim is committing, and it is let go (SIGCONT) to be caught in its next month. A holder killed
    with the slot would leave it taken on this temporary server (tasks/lake/write_lock.py): a different fault.
    """
    with Client(address, timeout=30) as client, get_client(sync_client=True) as prefect:
        while time.monotonic() < deadline:
            keys = list(client.processing(workers=[victim]).get(victim, []))
            for key, run_id in task_run_ids_by_key(client, keys).items():
                month = running_month(prefect, run_id)
                if month is None:
                    continue
                committing = None  # unknown if the read fails: let the victim go on
                os.killpg(group, signal.SIGSTOP)
                try:
                    committing = write_slot_taken(prefect, month)
                finally:
                    os.killpg(group, signal.SIGCONT if committing is not False else signal.SIGKILL)
                if not committing:
                    return Kill(key, run_id, month)
            time.sleep(0.05)
    raise TimeoutError(f"no month was seen running on {victim}")


def month_tables(root: str) -> dict[tuple[str, str], pa.Table]:
    """Every committed dataset of every month under `root`, keyed `(month, dataset)`, its rows in one order."""
    tables = {}
    for month in MONTHS:
        for dataset, table in read_month(root, SERVICE, month).items():
            tables[(str(month), dataset)] = table.sort_by([(name, "ascending") for name in table.column_names])
    return tables


def states_of(run: TaskRun) -> list[str]:
    with get_client(sync_client=True) as client:
        return [state.name for state in client.read_task_run_states(run.id)]


def test_a_worker_killed_in_a_month_loses_nothing_the_survivor_runs_it_again(tmp_path, generated_months, two_workers):
    address, groups = two_workers
    victim, survivor = sorted(groups)
    run_months = dict(service=SERVICE, months=[str(month) for month in MONTHS], source=generated_months)
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    killed: list[Kill | BaseException] = []

    def killer() -> None:
        try:
            killed.append(kill_in_a_running_month(address, victim, groups[victim], deadline))
        except BaseException as error:  # reported by the test thread
            killed.append(error)

    with Client(address, timeout=30) as observer:
        observer.get_task_stream()  # starts the scheduler's record of which worker finished which key
        killing = threading.Thread(target=killer, daemon=True)
        killing.start()
        state = taxi_etl_on(dask_address=address).with_options(timeout_seconds=RUN_TIMEOUT_SECONDS)(
            **run_months, output=str(tmp_path / "dask"), return_state=True
        )
        killing.join(timeout=max(1.0, deadline - time.monotonic()))
        finished_on = {record["key"]: record["worker"] for record in observer.get_task_stream()}
        workers_left = set(observer.scheduler_info()["workers"])

    assert killed and isinstance(killed[0], Kill), killed
    kill = killed[0]
    assert state.is_completed(), state.message
    assert workers_left == {survivor}, "the victim stays dead: a lost machine, not a restarted process"
    assert finished_on[kill.key] == survivor, "the lost month ran again, on the survivor"
    month_runs = {run.name: run for run in task_runs_of(state) if run.name.startswith("month-")}
    assert sorted(month_runs) == [f"month-{SERVICE}-{month}" for month in MONTHS]
    assert all(run.state_type == StateType.COMPLETED for run in month_runs.values())
    lost = month_runs[f"month-{SERVICE}-{kill.month}"]
    assert lost.id == kill.task_run_id
    # What the UI shows for the lost month: one task run (the rerun on the survivor reuses its id, which
    # prefect-dask fixed at submission) whose state history holds both attempts, Pending and Running twice, then
    # Completed. No Crashed state: the killed process had no chance to report one. Its run count says 1: the
    # survivor's task engine counts its own attempt only, so the history, not the count, shows the rerun.
    # The kill can also land after the month's task finished but before Dask had its result: its Completed state
    # is then recorded first, and the survivor's rerun finds the month already written by this run (its lineage)
    # and commits nothing again; the tables below are the same either way.
    interrupted, finished_first = ["Pending", "Running"] * 2 + ["Completed"], ["Pending", "Running", "Completed"] * 2
    assert states_of(lost) in (interrupted, finished_first) and lost.run_count == 1, states_of(lost)

    clean = taxi_etl(**run_months, output=str(tmp_path / "clean"), return_state=True)
    assert clean.is_completed(), clean.message
    after_kill, clean_tables = month_tables(str(tmp_path / "dask")), month_tables(str(tmp_path / "clean"))
    assert (
        sorted(after_kill)
        == sorted(clean_tables)
        == sorted((str(month), dataset) for month in MONTHS for dataset in ("trips", "quarantine"))
    )
    for partition, table in clean_tables.items():
        assert after_kill[partition].equals(table), partition


def test_each_worker_from_start_dask_computes_on_one_thread_so_a_second_worker_is_a_second_core(two_workers):
    import polars

    address, groups = two_workers
    with Client(address, timeout=60) as client:  # functions the workers import by name: they run the installed project
        pools = {"polars": client.run(polars.thread_pool_size), "arrow": client.run(pa.cpu_count)}
    for library, threads in pools.items():
        assert set(threads) == set(groups) and set(threads.values()) == {1}, (library, threads)
