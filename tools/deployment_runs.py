"""Deployment runs started the way a user starts them, on a server of one's own: the project copied as a fresh clone
holds it (deployed from there, whatever its runs write lands in the copy), runs started with `prefect deployment
run`, a process worker (`make worker`) running them, their final states read back.

`make screenshots` (`tools/ui_screenshots.py`) and `tests/test_deployments.py` both run deployments this way, so the
screenshots show what the deployments really run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import servers
from tasks import settings

FINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def api(api_url: str, path: str, body: dict | list | None = None, attempts: int = 12) -> list[dict] | dict:
    """POST `body` to the loopback server's `path` (GET without one), retried as Prefect's client retries while
    the server is busy: SQLite answers 503 ("database is locked") while several flow runs start at once."""
    url = f"{api_url}{path}"
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"{url}: only a server of this project on loopback is queried")
    headers = {"Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (loopback checked above)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback checked above)
                return json.loads(response.read())
        except (urllib.error.HTTPError, TimeoutError) as error:
            busy = isinstance(error, TimeoutError) or error.code == 503
            if not busy or attempt == attempts - 1:
                raise
            time.sleep(min(1 + attempt, 4))
    raise AssertionError("unreachable")


def project_copy(destination: Path) -> Path:
    """The project's tracked and new (not ignored) files copied to `destination`, as a fresh clone holds them."""
    git = shutil.which("git") or "git"
    listed = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=settings.PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (settings.PROJECT_ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(settings.PROJECT_ROOT / name, destination / name)
    return destination


def deploy(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`make deploy` from `cwd` (`python -m servers deploy`: pool, limits, every deployment, automations)."""
    return subprocess.run([sys.executable, "-m", "servers", "deploy"], cwd=cwd, env=env, capture_output=True, text=True)


def trigger(name: str, parameters: list[str], cwd: Path, env: dict[str, str]) -> str:
    """`prefect deployment run name --param ...` from `cwd`, as a user starts one: the new flow run's id."""
    params = [arg for parameter in parameters for arg in ("--param", parameter)]
    argv = [sys.executable, "-m", "prefect", "deployment", "run", name, *params]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not (found := re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)):
        raise RuntimeError(f"prefect deployment run {name} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return found.group(1)


def start_worker(api_url: str, env: dict[str, str]) -> None:
    """`make worker`'s process worker, four flow runs at a time (a dozen flow-run processes starting together keep
    a SQLite server locked), polling every 2 s so queued runs start soon."""
    limited = subprocess.run(
        [sys.executable, "-m", "prefect", "work-pool", "set-concurrency-limit", servers.WORK_POOL, "4"],
        env=env,
        capture_output=True,
        text=True,
    )
    if limited.returncode != 0:
        raise RuntimeError(f"work-pool set-concurrency-limit failed:\n{limited.stdout}{limited.stderr}")
    servers.start_worker(api_url, env={**env, "PREFECT_WORKER_QUERY_SECONDS": "2"})


def final_states(api_url: str, runs: dict[str, str], timeout: float = 600) -> dict[str, dict]:
    """Each flow run's state once every one of them is final (`runs`: label -> flow run id)."""
    deadline = time.monotonic() + timeout
    while True:
        states = {label: api(api_url, f"/flow_runs/{run_id}")["state"] for label, run_id in runs.items()}
        if all(state["type"] in FINAL_STATE_TYPES for state in states.values()):
            return states
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs not final after {timeout:.0f} s: {states}")
        time.sleep(3)
