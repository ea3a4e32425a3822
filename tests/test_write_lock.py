"""One writer per month: the Prefect concurrency limit that queues writers of a month (`tasks/lake/write_lock.py`).

Delta's optimistic concurrency keeps a month whole whatever the lock does (`tests/test_lake_concurrency.py`); the
lock makes writers of one month take turns instead of redoing their work after a conflict.

Run as `python -m tests.test_write_lock hold-and-die YYYY-MM`, this module is a child that dies holding a slot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tasks import settings
from tasks.months import Month

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_the_write_limit_is_created_once_with_one_slot_and_kept_at_one():
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from tasks.lake.write_lock import ensure_write_limit, write_lock_name

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
    from tasks.lake.write_lock import WriteLockTimeout, month_write_lock

    month, other = Month.parse("2031-08"), Month.parse("2031-09")
    with month_write_lock("yellow", month):
        advice = "prefect gcl update taxi-write-yellow-2031-08 --active-slots 0"
        with monkeypatch.context() as short:  # only the writer that must wait: a loaded server takes ~1 s to grant
            short.setattr(settings, "WRITE_LOCK_TIMEOUT_SECONDS", 1)
            with pytest.raises(WriteLockTimeout, match=advice), month_write_lock("yellow", month):
                pass
        with month_write_lock("yellow", other), month_write_lock("green", month):
            pass
    with month_write_lock("yellow", month):  # released on exit
        pass


def test_a_slot_left_by_a_killed_writer_is_freed_as_the_timeout_message_says(monkeypatch):
    """The session's server is a temporary one, which never frees a killed holder's slot by itself."""
    from prefect.settings import PREFECT_API_URL

    from tasks.lake.write_lock import WriteLockTimeout, month_write_lock

    month = Month.parse("2031-10")
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    holder = subprocess.run(
        [sys.executable, "-m", "tests.test_write_lock", "hold-and-die", str(month)],
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


def hold_and_die(month: str) -> None:
    """Take the month's write slot and die holding it, as a run killed while loading would."""
    from tasks.lake.write_lock import month_write_lock

    with month_write_lock("green", Month.parse(month)):
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    hold_and_die(sys.argv[2])
