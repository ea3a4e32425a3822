"""The project's Prefect global concurrency limits, created idempotently: `python -m blocks.limits` (or `make deploy`).

Two kinds of limit guard shared resources that no single run can see the whole of:

- `taxi-tlc-downloads`, a rate limit on downloads from http(s) sources. TLC's CloudFront answers a burst of parallel
  multi-hundred-megabyte requests with 403s, and a year of months mapped over a cluster sends exactly that. Each
  download takes one of `DOWNLOAD_BURST` slots (`prefect.concurrency.sync.rate_limit`), which decay at
  `DOWNLOAD_SLOTS_PER_SECOND` instead of being given back: at most `DOWNLOAD_BURST` start at once, then one per
  `1 / DOWNLOAD_SLOTS_PER_SECOND` seconds, across every run, process and Dask worker on the same Prefect API.
- `taxi-write-<service>-<yyyy>-<mm>`, one writer per month (`tasks/lake/write_lock.py`), created on first use.

With `strict=False` Prefect only warns about a missing limit and runs unguarded, so every limit is created first
(`tasks.lake.concurrency_limits.ensure_limit`, on first use too) and used with `strict=True`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from prefect.concurrency.sync import rate_limit

from tasks.lake.concurrency_limits import LimitSpec, ensure_limit

DOWNLOAD_LIMIT = "taxi-tlc-downloads"
DOWNLOAD_BURST = 4
DOWNLOAD_SLOTS_PER_SECOND = 0.5
DOWNLOAD_WAIT_SECONDS = 600  # a year of months queued behind the rate limit waits at most this long per month


PROJECT_LIMITS = (LimitSpec(DOWNLOAD_LIMIT, DOWNLOAD_BURST, DOWNLOAD_SLOTS_PER_SECOND),)


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
