"""The project's Prefect global concurrency limits, created idempotently: `python -m blocks.limits` (or `make deploy`).

Two kinds of limit guard shared resources that no single run can see the whole of:

- `taxi-tlc-downloads`, a rate limit on downloads from http(s) sources such as TLC's CloudFront. TLC answers a
  burst of parallel multi-hundred-megabyte requests with 403s, and mapping a year of months over a cluster would
  send exactly that. The limit has `DOWNLOAD_BURST` slots that decay at `DOWNLOAD_SLOTS_PER_SECOND`: each download
  takes a slot (`prefect.concurrency.sync.rate_limit`) and nobody gives it back, so at most `DOWNLOAD_BURST`
  downloads start at once and, sustained, one per `1 / DOWNLOAD_SLOTS_PER_SECOND` seconds, across every run,
  process and Dask worker that talks to the same Prefect API.
- `taxi-write-<service>-<yyyy>-<mm>`, one writer per month (`tasks/write_lock.py`). There is one per month, so they
  are created on first use rather than listed here.

Prefect's `rate_limit`/`concurrency` with `strict=False` only warn when the limit is missing and then run
unguarded; this module creates the limit first (also on first use) and uses `strict=True`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

DOWNLOAD_LIMIT = "taxi-tlc-downloads"
DOWNLOAD_BURST = 4
DOWNLOAD_SLOTS_PER_SECOND = 0.5
DOWNLOAD_WAIT_SECONDS = 600  # a year of months queued behind the rate limit waits at most this long per month


@dataclass(frozen=True)
class LimitSpec:
    """What a global concurrency limit should look like; `slot_decay_per_second` makes it a rate limit."""

    name: str
    limit: int
    slot_decay_per_second: float = 0.0


PROJECT_LIMITS = (LimitSpec(DOWNLOAD_LIMIT, DOWNLOAD_BURST, DOWNLOAD_SLOTS_PER_SECOND),)


def ensure_limit(spec: LimitSpec) -> str:
    """Create the limit if it is missing, or put it back to `spec` if someone changed it; returns what was done.

    Idempotent and safe against a concurrent creator (another run, another worker creating it at the same moment).
    Active slots are left alone: resetting them would free slots that running holders still hold.
    """
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(spec.name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(
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
            client.update_global_concurrency_limit(
                spec.name,
                GlobalConcurrencyLimitUpdate(
                    limit=spec.limit, active=True, slot_decay_per_second=spec.slot_decay_per_second
                ),
            )
            return "updated"
        return "exists"


def ensure_project_limits() -> dict[str, str]:
    """Every limit in `PROJECT_LIMITS`, created or corrected: `{name: "created" | "updated" | "exists"}`."""
    return {spec.name: ensure_limit(spec) for spec in PROJECT_LIMITS}


@cache
def _download_limit_ready(api_url: str | None) -> None:
    """Create the download limit once per process and API (the `api_url` argument keys the cache)."""
    ensure_limit(PROJECT_LIMITS[0])


def is_download(source: str) -> bool:
    """Sources fetched over http(s) go through the download rate limit; files and s3:// objects do not."""
    return source.startswith(("http://", "https://"))


@contextmanager
def download_slot(source: str, timeout_seconds: float = DOWNLOAD_WAIT_SECONDS) -> Iterator[None]:
    """Take one slot of the download rate limit before fetching `source` (a no-op for non-http sources).

    Wrap the code that opens the http(s) source with it. The slot is not given back on exit: it decays, which is
    what turns the limit into a rate. Raises `TimeoutError` after `timeout_seconds` without a slot.
    """
    if is_download(source):
        from prefect.settings import PREFECT_API_URL

        _download_limit_ready(PREFECT_API_URL.value())
        rate_limit(DOWNLOAD_LIMIT, occupy=1, timeout_seconds=timeout_seconds, strict=True)
    yield


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m blocks.limits",
        description="Create (or correct) this project's Prefect global concurrency limits on $PREFECT_API_URL.",
    ).parse_args(argv)
    for name, done in ensure_project_limits().items():
        print(f"concurrency limit {name}: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
