"""Distributed faults: a Dask worker SIGKILLed while it runs a month of `taxi_etl` on an existing scheduler.

Real processes throughout: `servers.start_dask` starts a `dask scheduler` and two `dask worker`s (each a nanny and
its worker process in their own process group, `MONTH=1`) reporting to the session's Prefect test server. The flow
runs several generated months on that cluster, and one worker, nanny and all, is killed with SIGKILL while a month
on it is running (a lost machine: nothing restarts it), perhaps holding the month's write slot, which the test then
frees as an operator would. The scheduler hands the lost month to the survivor, and the run must end as a clean run
on threads does: completed, with every month's datasets equal, partition by partition, and no write slot left taken.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pyarrow as pa
import pytest
from distributed import Client
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
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
IN_FLIGHT_SECONDS = 2.0  # what the server is given to answer a slot request the victim sent just before it froze


@pytest.fixture(scope="module")
def generated_months(tmp_path_factory) -> str:
    """Four generated yellow months; returns the source template `taxi_etl` reads them by."""
    folder = tmp_path_factory.mktemp("generated")
    write_months([MonthFile(SERVICE, month, ROWS_PER_MONTH, folder) for month in MONTHS], progress=False)
    return str(folder / "{service}_tripdata_{month}.parquet")


@contextmanager
def started_cluster(run_dir: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """A scheduler and two worker process groups from `servers.start_dask`, their process ids recorded in `run_dir`
    so that `servers.stop` ends exactly these: `(address, {worker address: process group id})`."""
    previous, settings.RUN_DIR = settings.RUN_DIR, run_dir
    try:
        address = servers.start_dask(PREFECT_API_URL.value())["TAXI_DASK_ADDRESS"]
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            nanny_pids = {int((run_dir / f"dask-worker-{i}.pid").read_text()) for i in range(2)}
            groups = {worker: os.getpgid(pid) for worker, pid in client.run(os.getpid).items()}
        assert set(groups.values()) == nanny_pids, "each worker process runs in its nanny's process group"
        yield address, groups
    finally:
        servers.stop()
        settings.RUN_DIR = previous


@pytest.fixture
def two_workers(tmp_path_factory):
    """A cluster of its own for the test that kills a worker. The workers also import the flow's module before the
    run, as a standing cluster's would have: the kill must land in a month, not in an import."""
    with started_cluster(tmp_path_factory.mktemp("run")) as (address, groups):
        with Client(address, timeout=60, set_as_default=False) as client:
            client.run(__import__, "flows.etl")
        yield address, groups


@pytest.fixture(scope="module")
def fresh_workers(prefect_server, tmp_path_factory):
    """A cluster the tests only look at, just as `servers.start_dask` left it (nothing run or imported since)."""
    with started_cluster(tmp_path_factory.mktemp("run")) as cluster:
        yield cluster


@dataclass
class Kill:
    """What was killed: the Dask key of the month that was running on the victim, its Prefect task run, and whether
    the victim held the month's write slot."""

    key: str
    task_run_id: UUID
    month: str
    held_write_slot: bool


def task_run_ids_by_key(client: Client, keys: list[str]) -> dict[str, UUID]:
    """The Prefect task run id of each Dask key (prefect-dask passes it to the worker as a keyword argument)."""

    def read(dask_scheduler, keys=keys):
        tasks = (dask_scheduler.tasks.get(key) for key in keys)
        return {ts.key: str(ts.run_spec.kwargs["task_run_id"]) for ts in tasks if ts is not None and ts.run_spec}

    return {key: UUID(run_id) for key, run_id in client.run_on_scheduler(read).items()}


def write_slot_taken(prefect: SyncPrefectClient, month: str) -> bool:
    """Whether the month's write limit has its slot taken (a limit not created yet has none: it is made when the
    month first asks for its slot)."""
    try:
        limit = prefect.read_global_concurrency_limit_by_name(write_lock_name(SERVICE, Month.parse(month)))
    except ObjectNotFound:
        return False
    return limit.active_slots > 0


def free_write_slot(prefect: SyncPrefectClient, month: str) -> None:
    """What the message of `WriteLockTimeout` tells an operator to do (`prefect gcl update NAME --active-slots 0`),
    and what a real server's repossessor does once the dead holder's lease lapses; the temporary server runs no
    repossessor."""
    name = write_lock_name(SERVICE, Month.parse(month))
    prefect.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))


def running_month(prefect: SyncPrefectClient, run_id: UUID) -> str | None:
    """The month of task run `run_id` if it is Running (a worker may hold a key before telling Prefect)."""
    try:
        run = prefect.read_task_run(run_id)
    except ObjectNotFound:
        return None
    return run.name.removeprefix(f"month-{SERVICE}-") if run.state_type == StateType.RUNNING else None


def kill_in_a_running_month(address: str, victim: str, group: int, run_ended: threading.Event) -> Kill:
    """SIGKILL the victim's process group once a month's task run on it is Running.

    The month holds its write slot from its first step to its commit (`tasks/lake/write_lock.py`), so the victim
    may die holding it. The victim is frozen first (SIGSTOP), so it sends nothing more; but a slot request it sent
    just before (the kill comes as soon as the month is Running, which is when it asks for its slot) may still be
    on its way, and the server takes the slot for it after the read. So the read waits `IN_FLIGHT_SECONDS` for the
    server to answer; no one else can take this month's slot meanwhile (the month is the frozen victim's). If the
    victim holds the slot, it is freed as an operator or a real server would, and the survivor's rerun of the month
    takes it. Raises `RuntimeError` if the run ends before a month ran on the victim.
    """
    with Client(address, timeout=30, set_as_default=False) as client, get_client(sync_client=True) as prefect:
        while not run_ended.is_set():
            keys = list(client.processing(workers=[victim]).get(victim, []))
            for key, run_id in task_run_ids_by_key(client, keys).items():
                month = running_month(prefect, run_id)
                if month is None:
                    continue
                os.killpg(group, signal.SIGSTOP)
                try:
                    time.sleep(IN_FLIGHT_SECONDS)
                    holds_slot = write_slot_taken(prefect, month)
                finally:  # a failed read still kills: a victim left frozen would hang the run
                    os.killpg(group, signal.SIGKILL)
                if holds_slot:
                    free_write_slot(prefect, month)
                return Kill(key, run_id, month, holds_slot)
            time.sleep(0.05)
    raise RuntimeError(f"the run ended before a month was seen running on {victim}")


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
    run_ended = threading.Event()
    killed: list[Kill | BaseException] = []

    def killer() -> None:
        try:
            killed.append(kill_in_a_running_month(address, victim, groups[victim], run_ended))
        except BaseException as error:  # reported by the test thread
            killed.append(error)

    with Client(address, timeout=30, set_as_default=False) as observer:
        observer.get_task_stream()  # starts the scheduler's record of which worker finished which key
        killing = threading.Thread(target=killer, daemon=True)
        killing.start()
        try:
            state = taxi_etl_on(dask_address=address).with_options(timeout_seconds=RUN_TIMEOUT_SECONDS)(
                **run_months, output=str(tmp_path / "dask"), return_state=True
            )
        finally:
            run_ended.set()
            killing.join(timeout=60)
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
    with get_client(sync_client=True) as prefect:
        assert not any(write_slot_taken(prefect, str(month)) for month in MONTHS), "every writer released its slot"

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


def test_each_worker_from_start_dask_computes_on_one_thread_so_a_second_worker_is_a_second_core(fresh_workers):
    import polars

    address, groups = fresh_workers
    # functions the workers import by name: they run the installed project
    with Client(address, timeout=60, set_as_default=False) as client:
        pools = {"polars": client.run(polars.thread_pool_size), "arrow": client.run(pa.cpu_count)}
    for library, threads in pools.items():
        assert set(threads) == set(groups) and set(threads.values()) == {1}, (library, threads)


def test_each_worker_from_start_dask_is_ready_for_months_before_its_first(fresh_workers):
    """`--preload flows.runners`: the month's modules imported and Prefect's collections loaded as a worker starts,
    not in its first month's time."""
    import sys

    address, groups = fresh_workers
    with Client(address, timeout=60, set_as_default=False) as client:
        ready = client.run(lambda: ("tasks.pipeline.month" in sys.modules, "prefect_aws" in sys.modules))
    assert set(ready) == set(groups) and set(ready.values()) == {(True, True)}, ready
