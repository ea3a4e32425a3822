"""Get or create a Prefect global concurrency limit: the one function the write lock and the project's limits use.

`concurrency(..., strict=False)` and `rate_limit(..., strict=False)` only warn when their limit does not exist and
then run unguarded, so the project creates its limits first and uses them with `strict=True`: the download rate
limit (`blocks/limits.py`) and one write limit per month (`tasks/lake/write_lock.py`).

`timeout_seconds` bounds the whole exchange with the API. Prefect's client waits up to
`PREFECT_API_REQUEST_TIMEOUT` (60 s) per request and retries timeouts several times with backoff, so against a
server that accepts connections and never answers one call lasts minutes. The calls run on Prefect's async client
inside `anyio.fail_after`, which cancels them, retries included, at the deadline.
"""

from __future__ import annotations

import ssl
from contextlib import suppress
from dataclasses import dataclass
from functools import cache

import anyio
import certifi
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY
from prefect.utilities.asyncutils import run_coro_as_sync


@dataclass(frozen=True)
class LimitSpec:
    """What a global concurrency limit should look like; `slot_decay_per_second` makes it a rate limit."""

    name: str
    limit: int
    slot_decay_per_second: float = 0.0


def ensure_limit(spec: LimitSpec, timeout_seconds: float | None = None) -> str:
    """Create the limit if it is missing, or put it back to `spec` if someone changed it; returns what was done:
    `"created"`, `"updated"` or `"exists"`. Raises `TimeoutError` when the API has not answered within
    `timeout_seconds` (None: no bound of our own).

    Idempotent and safe against a concurrent creator (another run, another worker creating it at the same moment).
    Active slots are left alone: resetting them would free slots that running holders still hold.
    """
    return run_coro_as_sync(_ensure_limit(spec, timeout_seconds))


@cache
def _tls_context(skip_verify: bool, cert_file: str | None) -> ssl.SSLContext:
    """The TLS context Prefect's client would build for these settings, built once per process."""
    if skip_verify:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=cert_file or certifi.where())


def api_client() -> PrefectClient:
    """Prefect's async client for the API, on a TLS context shared by the process.

    `PrefectClient` builds a new context for each client, even for an `http://` API: it loads the whole CA bundle,
    about 20 ms of CPU with the GIL held, and a month opens two clients (its write slot's acquire and release)."""
    settings = (bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()), PREFECT_API_SSL_CERT_FILE.value())
    return get_client(httpx_settings={"verify": _tls_context(*settings)})


async def _ensure_limit(spec: LimitSpec, timeout_seconds: float | None) -> str:
    with anyio.fail_after(timeout_seconds):
        async with api_client() as client:
            return await ensure_limit_with(client, spec)


async def ensure_limit_with(client: PrefectClient, spec: LimitSpec) -> str:
    """`ensure_limit` on an open client (a caller that goes on to use the limit saves opening another)."""
    try:
        existing = await client.read_global_concurrency_limit_by_name(spec.name)
    except ObjectNotFound:
        with suppress(ObjectAlreadyExists):
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name=spec.name, limit=spec.limit, slot_decay_per_second=spec.slot_decay_per_second
                )
            )
            return "created"
        return "exists"
    if (
        existing.limit != spec.limit
        or not existing.active
        or existing.slot_decay_per_second != spec.slot_decay_per_second
    ):
        await client.update_global_concurrency_limit(
            spec.name,
            GlobalConcurrencyLimitUpdate(
                limit=spec.limit, active=True, slot_decay_per_second=spec.slot_decay_per_second
            ),
        )
        return "updated"
    return "exists"
