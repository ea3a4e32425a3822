"""SIGTERM to `python -m flows.etl` ends it cleanly: nothing of it is left running, its temporary server included.

Without `PREFECT_API_URL` a run starts Prefect's temporary server as a child process and stops it when Python
exits normally. A SIGTERM that kills Python outright skips that, and the server stays up, orphaned (parent PID 1).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from tasks import settings
from tests.polling import eventually

SERVER_STARTED = re.compile(r"Starting temporary server on http://127\.0\.0\.1:(\d+)")


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def child_environment(home: Path) -> dict[str, str]:
    """This process's environment for a run of its own: its own Prefect home, no Prefect API (a temporary one)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
    }


@pytest.mark.flow
def test_sigterm_stops_the_run_and_its_temporary_server(tmp_path, prefect_home):
    command = [sys.executable, "-m", "flows.etl", "--output", str(tmp_path / "out")]
    child = subprocess.Popen(
        command,
        cwd=settings.PROJECT_ROOT,
        env=child_environment(Path(prefect_home(tmp_path / "prefect"))),  # its temporary server's database migrated
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stderr), daemon=True)  # keeps the pipe drained
    reader.start()
    tree: list[psutil.Process] = []
    try:
        started = eventually(lambda: next(filter(None, map(SERVER_STARTED.search, list(lines))), None), "a server")
        port = int(started.group(1))
        eventually(lambda: accepts(port), f"the temporary server listening on {port}", timeout=60, interval=0.2)
        tree = [psutil.Process(child.pid), *psutil.Process(child.pid).children(recursive=True)]
        assert len(tree) > 1, "the temporary server is a child process of the run"

        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=15) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs(tree, timeout=5)
        assert [process.pid for process in alive] == []
        assert not accepts(port)
    finally:
        for process in tree:  # only what this test started, by pid
            if process.is_running():
                process.kill()
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        reader.join(timeout=5)
    assert "Stopping temporary server" in "".join(lines)
