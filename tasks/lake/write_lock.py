"""One writer per month: a Prefect global concurrency limit of 1, named after the service and month.

Delta already keeps a month whole when two runs write it at once (the losing commit is refused and written again),
but both runs would compute the month. One slot per month (`taxi-write-yellow-2025-01`), held from extract to
commit, makes them take turns; other months still load in parallel. The limit is created here first (with
`strict=False` Prefect would only warn and run unguarded) and lives in the Prefect server the run talks to, so it
guards the runs sharing that server: a run on its own temporary server does not see it (Delta still keeps the
month whole; the last commit wins).

A killed writer. Its slot is a lease: a real `prefect server` frees it once the lease lapses
(`WRITE_LOCK_LEASE_SECONDS`); the temporary server does not (its repossessor does not run in ephemeral mode,
prefect 3.9.1), so later loads of that month wait `WRITE_LOCK_TIMEOUT_SECONDS` and fail, saying how to free the
slot by hand. Runs that may be killed (schedules, workers) belong on a real server.

An API that does not answer. Creating the limit and taking its slot share that one deadline (Prefect's client
alone would wait minutes per call); a refused connection fails at once. Both failures name the API and the limit.

Two months starting together. On a server backed by SQLite (the temporary one, and `make server`'s), taking a
slot is a transaction that reads, then writes; SQLite has one writer at a time, so a second month taking its own
slot at the same moment can meet "database is locked", which the server answers with a 503. Prefect's client would
retry after its 2 s backoff; `tasks.lake.lease` asks again after about 0.1 s. The month waits; nothing is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prefect.settings import PREFECT_API_URL

from tasks import settings
from tasks.lake.concurrency_limits import LimitSpec, ensure_limit
from tasks.lake.lease import acquire_slot, holding
from tasks.months import Month


class WriteLockTimeout(RuntimeError):
    """No write slot for a month within the timeout: another writer holds it, a killed one left it taken, or the
    Prefect API did not answer.

    A `RuntimeError`, not a `TimeoutError`: `tasks.retries` retries timeouts as network trouble, and waiting
    another `WRITE_LOCK_TIMEOUT_SECONDS` per retry would only delay the message that says how to free the slot.
    """


class WriteLockUnavailable(ConnectionError):
    """The Prefect API that holds the month's write limit refused the connection or could not be reached.

    A `ConnectionError`: transient for `tasks.retries` (a server restarting), so the month is retried with backoff.
    """


def write_lock_name(service: str, month: Month) -> str:
    """The global concurrency limit guarding one month of one service, e.g. `taxi-write-yellow-2025-01`."""
    return f"taxi-write-{service}-{month.year:04d}-{month.month:02d}"


def prefect_api() -> str:
    """The Prefect API this process talks to, for messages."""
    return PREFECT_API_URL.value() or "Prefect's temporary server (PREFECT_API_URL unset)"


def ensure_write_limit(name: str, timeout_seconds: float | None = None) -> None:
    """Create the limit with one slot if it is missing, or set it back to one active slot if someone changed it."""
    ensure_limit(LimitSpec(name, 1), timeout_seconds)


@contextmanager
def month_write_lock(service: str, month: Month) -> Iterator[None]:
    """Hold the month's write slot for the duration of the block; waits for another writer of the same month.

    The limit is created, or set back to one active slot, and its slot taken in one client session
    (`tasks.lake.lease`, which says what this saves over Prefect's `concurrency()`). One deadline,
    `WRITE_LOCK_TIMEOUT_SECONDS`, covers both however the API behaves. Raises `WriteLockTimeout` when it passes (not
    retried: a retry would wait as long again for a slot that a killed writer may hold for good), and
    `WriteLockUnavailable` when the API refuses the connection; both name the limit and the API.
    """
    name = write_lock_name(service, month)
    waited, lease = settings.WRITE_LOCK_TIMEOUT_SECONDS, settings.WRITE_LOCK_LEASE_SECONDS
    try:
        lease_id = acquire_slot(LimitSpec(name, 1), lease, waited)
    except TimeoutError:
        raise WriteLockTimeout(
            f"waited {waited} s for the concurrency limit {name} on the Prefect API at {prefect_api()}: another "
            f"run is writing {service} {month}, a run killed while writing left the slot taken (a real Prefect "
            f"server frees it {lease} s after; the temporary server never does), or "
            f"the API did not answer. If no run is writing this month: prefect gcl update {name} --active-slots 0"
        ) from None  # decisive for `tasks.retries`: a TimeoutError cause would make it a retry
    except httpx.TransportError as error:
        raise WriteLockUnavailable(
            f"the Prefect API at {prefect_api()} cannot be reached for the concurrency limit {name} "
            f"(the write lock of {service} {month}): {type(error).__name__}: {error}"
        ) from error
    with holding(lease_id, lease, release_seconds=waited):
        yield
