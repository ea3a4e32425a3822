"""The month's write lock against a Prefect API that is not there: one deadline, and messages naming the API and
the lock. A socket that accepts connections and never answers, and a closed port, both on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks import settings
from tasks.lake.write_lock import WriteLockTimeout, WriteLockUnavailable, month_write_lock
from tasks.months import Month
from tasks.retries import is_transient

DEADLINE_SECONDS = 3
SLACK_SECONDS = 5  # process and event-loop overhead on a loaded machine


@pytest.fixture
def silent_api() -> Iterator[str]:
    """A loopback socket that accepts connections (the kernel's backlog does) and never answers a request."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"


@pytest.fixture
def closed_api() -> str:
    """A loopback port nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


@pytest.fixture(autouse=True)
def short_deadline(monkeypatch):
    monkeypatch.setattr(settings, "WRITE_LOCK_TIMEOUT_SECONDS", DEADLINE_SECONDS)


def test_an_api_that_never_answers_fails_the_lock_within_its_deadline(silent_api):
    started = time.monotonic()
    with (
        temporary_settings({PREFECT_API_URL: silent_api}),
        pytest.raises(WriteLockTimeout) as failed,
        month_write_lock("yellow", Month(2025, 1)),
    ):
        pytest.fail("the lock was granted by a server that never answers")
    assert time.monotonic() - started < DEADLINE_SECONDS + SLACK_SECONDS
    assert silent_api in str(failed.value) and "taxi-write-yellow-2025-01" in str(failed.value)
    assert not is_transient(failed.value)


def test_a_refused_connection_fails_the_lock_naming_the_api_and_the_lock(closed_api):
    started = time.monotonic()
    with (
        temporary_settings({PREFECT_API_URL: closed_api}),
        pytest.raises(WriteLockUnavailable) as failed,
        month_write_lock("green", Month(2024, 12)),
    ):
        pytest.fail("the lock was granted by a closed port")
    assert time.monotonic() - started < DEADLINE_SECONDS + SLACK_SECONDS
    assert closed_api in str(failed.value) and "taxi-write-green-2024-12" in str(failed.value)
    assert is_transient(failed.value)  # a server restarting: the month is retried with backoff
