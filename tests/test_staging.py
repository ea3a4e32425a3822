"""Staging folders: removed when their block ends, and, when a process is killed, by the next staging on the host,
never while their owner runs. The owners here are real child processes (one SIGKILLed, one alive)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import settings
from tasks.pipeline.staging import owner_alive, process_start, staging_folder

CHILD = """
import os, signal, sys
from pathlib import Path
from tasks.pipeline.staging import staging_folder
with staging_folder("month") as folder:
    (Path(folder) / "trips.parquet").write_bytes(b"a staged month")
    print(folder, flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.read()  # alive until the test closes our stdin
"""


@pytest.fixture
def staging_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TAXI_STAGING_DIR", str(tmp_path / "staging"))  # children inherit it
    return tmp_path / "staging"


def child(how: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, how],
        cwd=settings.PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_folder_left_by_a_sigkilled_process_is_swept_by_the_next_staging(staging_root):
    killed = child("kill")
    left = Path(killed.stdout.readline().strip())
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert (left / "trips.parquet").exists() and left.parent == staging_root  # no clean-up ran

    with staging_folder("source") as folder:
        assert not left.exists() and Path(folder).is_dir()
    assert not Path(folder).exists() and list(staging_root.iterdir()) == []


def test_a_live_owners_folder_is_left_alone_until_its_block_ends(staging_root):
    alive = child("live")
    try:
        theirs = Path(alive.stdout.readline().strip())
        with staging_folder("month"):
            assert (theirs / "trips.parquet").exists()
    finally:
        alive.stdin.close()
        assert alive.wait(timeout=60) == 0
    assert not theirs.exists()


def test_a_folder_is_removed_when_its_block_fails(staging_root):
    with pytest.raises(RuntimeError), staging_folder("month") as folder:
        raise RuntimeError("the month failed")
    assert not Path(folder).exists()


def test_an_owner_is_its_pid_and_start_time_on_this_host():
    me, start = os.getpid(), process_start(os.getpid())
    assert owner_alive(f"taxi-month-{me}-{start}@host-abcd_123", host="host")
    assert not owner_alive(f"taxi-month-{me}-{start - 1}@host-abcd_123", host="host")  # the pid was reused
    assert owner_alive(f"taxi-month-{me}-{start - 1}@elsewhere-abcd_123", host="host")  # not ours to judge
    assert owner_alive("taxi-bench-out-abcd_123", host="host")  # not a staging folder
    assert process_start(2**22 + 1) is None  # above Linux's highest pid
