"""Waiting for what a server does in its own time: a schedule's runs, a scrape, a log batch, a task run's state.

Prefect writes task runs and logs from events and batches, a moment (on a loaded machine, a minute) after the flow
returned; Prometheus scrapes every second. A test reads such things through `eventually`, never once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], what: str, timeout: float = 60, interval: float = 0.5) -> T:
    """`check()`'s first truthy answer, asked every `interval` seconds; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if answer := check():
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout:.0f} s")
        time.sleep(interval)
