"""One writer per month: a Prefect global concurrency limit of 1, named after the service and month.

The lake (`tasks/lake/`) keeps every month whole on its own (Delta's optimistic concurrency refuses the second of
two commits of one month, which then writes again), but two runs writing the same month at once (two deployments,
a manual run beside a scheduled one) would each compute the month and redo the loser's write. Holding a limit of
one slot per month, held from extract to commit,
`taxi-write-yellow-2025-01`, makes them take turns; months of different services or dates still load in parallel.

Prefect's `concurrency(..., strict=False)` only warns when the limit does not exist and then runs unguarded, so the
limit is created here first (idempotently: another run may create it at the same moment) and used with
`strict=True`. Works against any Prefect API: the temporary server a local run starts, or a real `prefect server`.
The limit lives in that server, so it guards the runs that share one: a run on its own temporary server does not
see a deployment's slot (the commit record still keeps each month whole; the last commit wins).

A killed writer. The slot is held through a lease that the holder renews while it lives. A real `prefect server`
frees the slot of a killed holder once its lease lapses (seen with prefect 3.8.8: the next writer got the slot 71 s
after a SIGKILL, with `WRITE_LOCK_LEASE_SECONDS` = 60). The temporary server does not: it runs without the service
that revokes expired leases, and the taken slot stays in the SQLite database under `PREFECT_HOME`, so every later
load of that month waits `WRITE_LOCK_TIMEOUT_SECONDS` and fails, saying how to free the slot by hand. Runs that
may be killed (schedules, workers) belong on a real server anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from tasks import settings
from tasks.months import Month


class WriteLockTimeout(RuntimeError):
    """No write slot for a month within the timeout: another writer holds it, or a killed one left it taken.

    A `RuntimeError`, not a `TimeoutError`: `tasks.retries` retries timeouts as network trouble, and waiting
    another `WRITE_LOCK_TIMEOUT_SECONDS` per retry would only delay the message that says how to free the slot.
    """


def write_lock_name(service: str, month: Month) -> str:
    """The global concurrency limit guarding one month of one service, e.g. `taxi-write-yellow-2025-01`."""
    return f"taxi-write-{service}-{month.year:04d}-{month.month:02d}"


def ensure_write_limit(name: str) -> None:
    """Create the limit with one slot if it is missing, or set it back to one active slot if someone changed it."""
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it between our read and create
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            return
        if existing.limit != 1 or not existing.active:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1, active=True))


@contextmanager
def month_write_lock(service: str, month: Month) -> Iterator[None]:
    """Hold the month's write slot for the duration of the block; waits for another writer of the same month.

    Raises `WriteLockTimeout` after `WRITE_LOCK_TIMEOUT_SECONDS` without the slot: not retried, since a retry
    would wait as long again for a slot that a killed writer may hold for good.
    """
    name = write_lock_name(service, month)
    ensure_write_limit(name)
    with ExitStack() as held:
        try:
            held.enter_context(
                concurrency(
                    name,
                    occupy=1,
                    timeout_seconds=settings.WRITE_LOCK_TIMEOUT_SECONDS,
                    lease_duration=settings.WRITE_LOCK_LEASE_SECONDS,
                    strict=True,
                )
            )
        except TimeoutError as error:
            raise WriteLockTimeout(
                f"waited {settings.WRITE_LOCK_TIMEOUT_SECONDS} s for the concurrency limit {name}: another run is "
                f"writing {service} {month}, or a run killed while writing left the slot taken (a real Prefect server "
                f"frees it {settings.WRITE_LOCK_LEASE_SECONDS} s after; the temporary server never does). If no run "
                f"is writing this month: prefect gcl update {name} --active-slots 0"
            ) from error
        yield
