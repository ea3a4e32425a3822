"""One slot of a Prefect global concurrency limit, held under a lease: acquire, keep renewed, release.

Prefect's `concurrency()` does the same in general, with three costs a month pays for nothing. It waits about
2 s whenever the server answers 503 (its client's backoff): a SQLite server answers that when two writes meet
(`database is locked`), as the slot requests of two months started together do. It renews the lease at once, in
a thread it joins on exit, so a short month waits for that call too. And a caller that must be sure the limit
exists reads it first. Here a busy server is asked again after a fraction of a second, the lease is renewed only
when due (`RENEW_AT` of it), and the limit is checked and the slot taken in one client session.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import anyio
import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse
from prefect.utilities.asyncutils import run_coro_as_sync

from tasks.lake.concurrency_limits import LimitSpec, api_client, ensure_limit_with
from tasks.observe.run_log import step_logger

BUSY_RETRY_SECONDS = 0.1  # a 503 from a SQLite server's locked database: asked again after about this long
RENEW_AT = 0.75  # of the lease's duration: when the holder renews it


async def _post(client: PrefectClient, path: str, body: dict) -> httpx.Response:
    """POST to the API, asked again while the server is busy (503) or the slot is taken (423, after its
    Retry-After). Sent by httpx itself: the Prefect client's `send` would sleep its ~2 s backoff on a 503 first."""
    http = client._client
    while True:
        response = await httpx.AsyncClient.send(http, http.build_request("POST", path, json=body))
        if response.status_code == 423:
            await anyio.sleep(float(response.headers.get("Retry-After", 1)))
        elif response.status_code == 503:
            await anyio.sleep(BUSY_RETRY_SECONDS * random.uniform(0.5, 1.5))  # noqa: S311 (jitter, not a secret)
        else:
            return response.raise_for_status()


async def _acquire(spec: LimitSpec, lease_seconds: float, deadline: float | None) -> UUID:
    with anyio.fail_after(deadline):
        async with api_client() as client:
            await ensure_limit_with(client, spec)
            body = {"names": [spec.name], "slots": 1, "mode": "concurrency", "lease_duration": lease_seconds}
            response = await _post(client, "/v2/concurrency_limits/increment-with-lease", body)
            return ConcurrencyLimitWithLeaseResponse.model_validate(response.json()).lease_id


async def _release(lease_id: UUID, deadline: float) -> None:
    with anyio.fail_after(deadline):
        async with api_client() as client:
            await _post(client, "/v2/concurrency_limits/decrement-with-lease", {"lease_id": str(lease_id)})


def acquire_slot(spec: LimitSpec, lease_seconds: float, deadline: float | None) -> UUID:
    """A slot of the limit `spec` (a lease id), made or set back to `spec` first, in the same client session;
    waits while the limit is full. Raises `TimeoutError` after `deadline` seconds."""
    return run_coro_as_sync(_acquire(spec, lease_seconds, deadline))


def _keep_renewed(lease_id: UUID, lease_seconds: float, stop: threading.Event) -> None:
    while not stop.wait(lease_seconds * RENEW_AT):
        try:
            with get_client(sync_client=True) as client:
                client.renew_concurrency_lease(lease_id=lease_id, lease_duration=lease_seconds)
        except Exception as error:  # the slot lapses: another writer may start; Delta still keeps the month whole
            step_logger(__name__).error("lease %s not renewed: %s: %s", lease_id, type(error).__name__, error)
            return


@contextmanager
def holding(lease_id: UUID, lease_seconds: float, release_seconds: float) -> Iterator[None]:
    """Keep the lease renewed for the block's duration, then release its slot."""
    stop = threading.Event()
    renewer = threading.Thread(target=_keep_renewed, args=(lease_id, lease_seconds, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        run_coro_as_sync(_release(lease_id, release_seconds))
