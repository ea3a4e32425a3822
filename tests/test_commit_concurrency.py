"""One writer per month: the Prefect concurrency limit behind the `load` task, and two real processes racing.

The race: two child processes load the same month from different sources through the `load` task, against the
session's Prefect server, released at the same moment and slowed down while staging so that, unguarded, their
writes would overlap. They must take turns, and the month must end with trips and quarantine from one source.

Run as `python -m tests.test_commit_concurrency ROOT SOURCE SYNC_FOLDER`, this module is that child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from functools import wraps
from pathlib import Path

import pytest

from tasks import settings
from tasks.lake import filesystem_for, read_month
from tasks.months import Month
from tests.test_commit_crash import JAN_2025, SERVICE, files_under, month_from, plain_view, sources_of

pytestmark = pytest.mark.usefixtures("prefect_server")
SOURCES = ("A", "B")
WRITERS_MEET_SECONDS = 10


@pytest.fixture(params=["local", "s3"])
def lake_root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"s3://{request.getfixturevalue('s3_bucket')}/lake"


def test_the_write_limit_is_created_once_with_one_slot_and_kept_at_one():
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from tasks.write_lock import ensure_write_limit, write_lock_name

    name = write_lock_name("green", Month.parse("2031-07"))
    assert name == "taxi-write-green-2031-07"
    ensure_write_limit(name)
    ensure_write_limit(name)  # a second run finds it and leaves it be
    with get_client(sync_client=True) as client:
        assert [gcl.name for gcl in client.read_global_concurrency_limits()].count(name) == 1
        assert client.read_global_concurrency_limit_by_name(name).limit == 1
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=3, active=False))
        ensure_write_limit(name)
        restored = client.read_global_concurrency_limit_by_name(name)
    assert (restored.limit, restored.active) == (1, True)


def test_a_second_writer_of_the_same_month_waits_and_other_months_do_not(monkeypatch):
    from tasks.write_lock import WriteLockTimeout, month_write_lock

    monkeypatch.setattr(settings, "WRITE_LOCK_TIMEOUT_SECONDS", 1)
    month, other = Month.parse("2031-08"), Month.parse("2031-09")
    with month_write_lock("yellow", month):
        advice = "prefect gcl update taxi-write-yellow-2031-08 --active-slots 0"
        with pytest.raises(WriteLockTimeout, match=advice), month_write_lock("yellow", month):
            pass
        with month_write_lock("yellow", other), month_write_lock("green", month):
            pass
    with month_write_lock("yellow", month):  # released on exit
        pass


def test_a_slot_left_by_a_killed_writer_is_freed_as_the_timeout_message_says(monkeypatch):
    """The session's server is a temporary one, which never frees a killed holder's slot by itself."""
    from prefect.settings import PREFECT_API_URL

    from tasks.write_lock import WriteLockTimeout, month_write_lock

    month = Month.parse("2031-10")
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    holder = subprocess.run(
        [sys.executable, "-m", "tests.test_commit_concurrency", "hold-and-die", str(month)],
        cwd=settings.PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert holder.returncode == -signal.SIGKILL, holder.stderr[-2000:]
    monkeypatch.setattr(settings, "WRITE_LOCK_TIMEOUT_SECONDS", 1)
    with pytest.raises(WriteLockTimeout) as waited, month_write_lock("green", month):
        pass
    advice = str(waited.value).rsplit(": ", 1)[-1]
    assert advice == "prefect gcl update taxi-write-green-2031-10 --active-slots 0"
    freed = subprocess.run(
        [sys.executable, "-m", "prefect", *advice.split()[1:]], env=environment, capture_output=True, text=True
    )
    assert freed.returncode == 0, freed.stdout + freed.stderr
    with month_write_lock("green", month):
        pass


def test_two_processes_loading_one_month_take_turns_and_leave_one_source(lake_root, tmp_path):
    from prefect.settings import PREFECT_API_URL

    sync = tmp_path / "sync"
    sync.mkdir()
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_commit_concurrency", lake_root, source, str(sync)],
            cwd=settings.PROJECT_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for source in SOURCES
    ]
    try:
        wait_for(lambda: all((sync / f"ready-{s}").exists() for s in SOURCES) or any(c.poll() for c in children))
        (sync / "go").touch()
        outputs = [child.communicate(timeout=240)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert [child.returncode for child in children] == [0, 0], outputs

    first, second = sorted(tuple(map(int, (sync / f"times-{s}").read_text().split())) for s in SOURCES)
    assert first[1] <= second[0], "the two writes of one month overlapped"
    committed = sources_of(read_month(lake_root, SERVICE, JAN_2025))
    assert committed in ({"trips": {s}, "quarantine": {s}} for s in SOURCES)
    assert plain_view(lake_root) == committed
    assert len([f for f in files_under(lake_root, "_versions") if f.endswith("trips.pq")]) == 1


def wait_for(condition, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout} s")
        time.sleep(0.1)


def main(root: str, source: str, sync_folder: str) -> None:
    """Load month `source` through the `load` task once the parent says go, recording when writing began and ended."""
    import tasks.load as load_module

    sync = Path(sync_folder)
    filesystem = filesystem_for(root)
    real_open, real_write_month = filesystem.open, load_module.write_month

    @wraps(real_open)
    def slow_open(path, mode="rb", *args, **kwargs):
        if "w" in mode:
            time.sleep(0.5)  # widen the window in which two unguarded writers would interleave
        return real_open(path, mode, *args, **kwargs)

    @wraps(real_write_month)
    def recorded_write_month(*args, **kwargs):
        began = time.time_ns()
        # Meet the other writer here if it can get here too (it cannot while we hold the month's slot): unguarded,
        # both would then write at once, whatever their task runs took to start.
        (sync / f"writing-{source}").touch()
        with suppress(TimeoutError):
            wait_for(lambda: len(list(sync.glob("writing-*"))) == len(SOURCES), timeout=WRITERS_MEET_SECONDS)
        result = real_write_month(*args, **kwargs)
        (sync / f"times-{source}").write_text(f"{began} {time.time_ns()}")
        return result

    filesystem.open = slow_open
    load_module.write_month = recorded_write_month
    (sync / f"ready-{source}").touch()
    wait_for((sync / "go").exists)
    tables = month_from(source)
    load_module.load(tables["trips"], tables["quarantine"], root, SERVICE, JAN_2025)


def hold_and_die(month: str) -> None:
    """Take the month's write slot and die holding it, as a run killed while loading would."""
    from tasks.write_lock import month_write_lock

    with month_write_lock("green", Month.parse(month)):
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    if sys.argv[1] == "hold-and-die":
        hold_and_die(sys.argv[2])
    else:
        main(*sys.argv[1:])
