"""Local servers for demos, lessons and tests: a Prefect server, moto S3, a Dask scheduler with two workers.

Each is started on 127.0.0.1 on a free port, in its own process group, with its process id recorded under
`.run/`; `stop` ends exactly those process groups (never anything found by name). `python -m servers --help`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tasks import settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Start `argv` in a new process group, logging to `.run/<name>.log`; records and returns its process id."""
    settings.RUN_DIR.mkdir(exist_ok=True)
    with open(settings.RUN_DIR / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
    (settings.RUN_DIR / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s; see {settings.RUN_DIR}/*.log")


def http_ok(url: str) -> bool:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"{url}: only this project's loopback servers are probed")
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (scheme and host checked above)
        return response.status == 200


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def write_env(name: str, variables: dict[str, str]) -> Path:
    path = settings.RUN_DIR / f"{name}.env"
    path.write_text("".join(f"export {key}={value}\n" for key, value in variables.items()))
    return path


def start_prefect(env: dict[str, str] | None = None) -> dict[str, str]:
    """`prefect server start` on a free loopback port; waits for /api/health.

    The server keeps its database in its own home, `.run/prefect-home/` (unless `env` sets `PREFECT_HOME`), so the
    UI shows this project's runs only, not whatever else ran on the machine under `~/.prefect`. The UI is told the
    API's real address: by default it would call port 4200, which is another server or none.
    """
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    spawn(
        "prefect",
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        {
            "PREFECT_HOME": str(settings.RUN_DIR / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_API_URL": api,
            "PREFECT_SERVER_METRICS_ENABLED": "true",  # /api/metrics, which `make monitor`'s Prometheus scrapes
            **(env or {}),
        },
    )
    try:
        wait_until(lambda: http_ok(f"{api}/health"), "Prefect server", timeout=180)
    except TimeoutError:
        stop(["prefect"])  # a server that never became healthy must not linger unrecorded
        raise
    return {"PREFECT_API_URL": api}


def start_s3() -> dict[str, str]:
    """A standing moto S3 server (see `servers/local_s3.py`)."""
    port = free_port()
    spawn("s3", [sys.executable, "-m", "servers.local_s3"], {"TAXI_S3_PORT": str(port)})
    wait_until(lambda: port_open(port), "moto S3")
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


# One thread of CPU per Dask worker: a worker runs one month at a time (`--nthreads 1`, `MONTH=1`), but polars,
# Arrow (OMP_NUM_THREADS sizes its CPU pool), BLAS and tokio (deltalake) each start a pool as wide as the machine.
# Two workers' pools on two cores would fight over both; one thread each makes a worker one core's worth of work.
SINGLE_THREADED = {
    "POLARS_MAX_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "TOKIO_WORKER_THREADS": "1",
}


# What makes a `dask worker` one of the project's: one month at a time (`flows.runners.MONTH_RESOURCE`) and readied
# for months as it starts (`flows.runners.dask_setup`). deploy/dask-helm-values.yaml gives its workers the same.
DASK_WORKER_ARGS = ("--resources", "MONTH=1", "--preload", "flows.runners")


def start_dask(api_url: str, workers: int = 2, name: str = "dask") -> dict[str, str]:
    """A `dask scheduler` and `workers` single-threaded `dask worker`s that report to Prefect at `api_url`.

    Each worker declares one unit of the resource `MONTH`: `taxi_etl` asks one per month, so a worker holds at most
    one heavy month at a time (see flows/etl.py); its libraries use one CPU thread (`SINGLE_THREADED`), so each
    worker added adds one core's worth of work. Each worker is readied for months as it starts (`--preload
    flows.runners`, which runs `flows.runners.dask_setup`), not in its first month's time. The processes are
    recorded as `<name>-scheduler`, `<name>-worker-<i>` (`scheduler_pid(name)`).
    """
    port = free_port()
    bin_dir = Path(sys.executable).parent
    # PYTHONPATH: the cluster unpickles the flow's functions by module name, so it must import this checkout's
    # modules, not whichever checkout the environment's editable install points at
    env = {"PREFECT_API_URL": api_url, "PYTHONPATH": str(settings.PROJECT_ROOT)}
    spawn(
        f"{name}-scheduler",
        [
            str(bin_dir / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            "127.0.0.1:0",
        ],
        env,
    )
    wait_until(lambda: port_open(port), "Dask scheduler")
    address = f"tcp://127.0.0.1:{port}"
    for index in range(workers):
        spawn(
            f"{name}-worker-{index}",
            [
                *(str(bin_dir / "dask"), "worker", address, "--host", "127.0.0.1", "--nthreads", "1"),
                *("--no-dashboard", *DASK_WORKER_ARGS),
            ],
            {**env, **SINGLE_THREADED},
        )
    return {"TAXI_DASK_ADDRESS": address}


def scheduler_pid(name: str = "dask") -> int:
    """The process id of the scheduler `start_dask(..., name=name)` started (its RSS is the scheduler's own)."""
    return int((settings.RUN_DIR / f"{name}-scheduler.pid").read_text())


WORK_POOL = "taxi-process"


def start_worker(api_url: str, pool: str = WORK_POOL, env: dict[str, str] | None = None) -> int:
    """A process worker for `pool` (each flow run's pull step sets the folder it runs in); returns its process id."""
    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool]
    return spawn("worker", argv, {"PREFECT_API_URL": api_url, **(env or {})})


# `prefect deploy` prints how to start a worker after every deployment while none is online (eleven times here),
# and `work-pool create` once more; this project starts its worker with `make worker`, said once at the end.
_WORKER_HINTS = ("start a worker", "prefect worker start", "work pool:")


def deploy_all(pool: str = WORK_POOL, cwd: Path = settings.PROJECT_ROOT) -> int:
    """Create the project's concurrency limits (`blocks/limits.py`) and the process work pool `pool` if they are
    missing, then `prefect --no-prompt deploy --all` from `cwd`, then the automations (`blocks/automations.py`).

    Prefect's own output is passed through, less its repeated worker hints; returns the deploy's exit code.
    """
    from blocks.limits import ensure_project_limits

    for name, done in ensure_project_limits().items():
        print(f"concurrency limit {name}: {done}")
    prefect = [sys.executable, "-m", "prefect"]
    wide = {**os.environ, "COLUMNS": "100"}  # rich wraps at 80 columns when piped
    if subprocess.run([*prefect, "work-pool", "inspect", pool], capture_output=True, env=wide).returncode == 0:
        print(f"work pool {pool} exists")
    else:
        created = subprocess.run(
            [*prefect, "work-pool", "create", pool, "--type", "process"], capture_output=True, text=True, env=wide
        )
        if created.returncode != 0:
            print(created.stdout + created.stderr, file=sys.stderr)
            return created.returncode
        print(f"created work pool {pool} (type process)")
    deployed = subprocess.run(  # PWD is what prefect.yaml's `{{ $PWD }}` pull step records
        [*prefect, "--no-prompt", "deploy", "--all"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**wide, "PWD": str(cwd)},
    )
    kept = [line for line in deployed.stdout.splitlines() if not any(hint in line for hint in _WORKER_HINTS)]
    print(re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip())
    print(deployed.stderr, end="", file=sys.stderr)
    if deployed.returncode != 0:
        return deployed.returncode
    from blocks.automations import ensure_project_automations  # they name deployments: after the deploy

    for name, done in ensure_project_automations().items():
        print(f"automation {name}: {done}")
    print(f"\nTo run these deployments, start a worker for {pool}: make worker")
    return 0


def _gone(pid: int, within: float = 3.0) -> bool:
    """True once process `pid` has exited, waiting at most `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:  # started by this process: reap it, or it lingers as a zombie
                return True
        except ChildProcessError:  # started by an earlier command (`make dask`, ...): just look for it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.25)
    return False


def _terminate_group(pid: int) -> None:
    """SIGTERM the process group `pid` leads, then SIGKILL if it is still there after a few seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        if _gone(pid):
            return


def stop(names: list[str] | None = None) -> list[str]:
    """Terminate the recorded process groups (all, or those named); returns what was stopped."""
    stopped = []
    for pid_file in sorted(settings.RUN_DIR.glob("*.pid")) if settings.RUN_DIR.exists() else []:
        if names and not any(pid_file.stem.startswith(n) for n in names):
            continue
        _terminate_group(int(pid_file.read_text()))
        pid_file.unlink()
        (settings.RUN_DIR / f"{pid_file.stem}.env").unlink(missing_ok=True)
        stopped.append(pid_file.stem)
    for env_file in sorted(settings.RUN_DIR.glob("*.env")) if stopped else []:
        if not any(settings.RUN_DIR.glob(f"{env_file.stem}*.pid")):  # `dask.env` once every `dask-*` has stopped
            env_file.unlink()
    return stopped
