"""Which failures are worth retrying, and the retry options every network step (extract, load) shares.

A scheduled pipeline meets two kinds of failure. Transient ones go away by themselves: a timeout, a refused or
reset connection, HTTP 5xx or 429, S3 throttling (`SlowDown`) or its 5xx. Retrying them later, with waits that
grow and are jittered so that many runs do not come back at the same instant, usually turns a failed night into
a late one. Permanent ones never go away: a 404, credentials S3 rejects (`InvalidAccessKeyId`,
`SignatureDoesNotMatch`, `AccessDenied`), a corrupt file, or a bug (`TypeError`, `KeyError`). Retrying those only
delays the alert and hammers the source, so they fail at once.

`is_transient` is the one place that decides, from real exception objects: botocore's `ClientError` (by its S3
error code and HTTP status), botocore's connection and read-timeout errors, aiohttp's (fsspec's HTTP client)
response and connection errors, urllib's errors, and the `OSError`s that s3fs translates S3 errors into.
An exception raised `from` another one (such as `SourceError`, which names the file) is judged by its cause;
anything it does not recognise is treated as permanent, because an unknown error is more likely a bug than a
blip.
"""

from __future__ import annotations

import errno
import urllib.error
from typing import Any

import aiohttp
import botocore.exceptions
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff

from tasks import settings

# S3 error codes that mean "too fast" or "the service is struggling": AWS's documented throttling codes and 5xx.
TRANSIENT_S3_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    }
)
# errno values of an OSError that name a passing condition. s3fs turns S3's SlowDown and ServiceUnavailable into
# EBUSY and InternalError into EREMOTEIO.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EBUSY,
        errno.EREMOTEIO,
        errno.EAGAIN,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EPIPE,
    }
)
PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def is_transient_status(status: int) -> bool:
    """HTTP statuses worth retrying: 408 (request timeout), 429 (too many requests) and every 5xx."""
    return status in (408, 429) or 500 <= status <= 599


def _s3_error_is_transient(error: botocore.exceptions.ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in TRANSIENT_S3_CODES or (code.isdigit() and is_transient_status(int(code))):
        return True
    return isinstance(status, int) and is_transient_status(status)


def _judge(error: BaseException) -> bool | None:
    """True or False when this exception alone decides; None when only its cause can tell."""
    if isinstance(error, botocore.exceptions.ClientError):
        return _s3_error_is_transient(error)
    if isinstance(error, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        return True  # could not connect, connection closed, read timeout
    if isinstance(error, aiohttp.ClientResponseError):
        return is_transient_status(error.status)
    if isinstance(error, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return True  # refused, reset, DNS, server disconnected, body cut short
    if isinstance(error, urllib.error.HTTPError):
        return is_transient_status(error.code)
    if isinstance(error, urllib.error.URLError):
        return True  # urllib's "could not reach the host"
    if isinstance(error, TimeoutError | ConnectionError):
        return True  # includes asyncio.TimeoutError and fsspec's FSTimeoutError
    if isinstance(error, PERMANENT_OS_ERRORS):
        return False
    if isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS:
        return True
    if isinstance(error, OSError) or error.__cause__ is not None:
        return None  # a translated or wrapped error: its cause decides
    return False


def deciding_error(error: BaseException) -> tuple[BaseException, bool]:
    """The exception in `error`'s chain that decides, and whether it is transient (see `is_transient`)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _judge(current)
        if verdict is not None:
            return current, verdict
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return error, False


def is_transient(error: BaseException) -> bool:
    """Whether retrying the step that raised `error` can help (see the module docstring for the rules).

    Walks from the outermost exception to its causes and stops at the first one that decides, so a `SourceError`
    saying "cannot be fetched" is judged by the connection error beneath it, while a `KeyError` raised while
    handling a timeout is still a bug.
    """
    return deciding_error(error)[1]


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry the failed task run only if its exception is transient."""
    error = state.result(raise_on_failure=False)
    if not isinstance(error, BaseException):
        return False
    decided_by, transient = deciding_error(error)
    if not transient:
        get_run_logger().info("Not retrying %s: %s is permanent (%s)", task.name, type(decided_by).__name__, decided_by)
    return transient


def retry_delays(backoff_seconds: float, attempts: int) -> list[float]:
    """The wait before each retry: `backoff_seconds`, then doubling (Prefect's `exponential_backoff`)."""
    return exponential_backoff(backoff_factor=backoff_seconds)(attempts)


def network_retry_options(
    backoff_seconds: float | None = None, attempts: int | None = None, jitter_factor: float | None = None
) -> dict[str, Any]:
    """`@task(...)` keyword arguments for a step that talks to the network; defaults from `tasks.settings`.

    Decorators read the settings when the module is imported. A test shrinks the waits on the imported task
    instead: `monkeypatch.setattr(extract, "retry_delay_seconds", retry_delays(0.1, 3))`, since Prefect reads
    those attributes each time it schedules a retry.
    """
    attempts = settings.RETRY_ATTEMPTS if attempts is None else attempts
    backoff = settings.RETRY_BACKOFF_SECONDS if backoff_seconds is None else backoff_seconds
    return {
        "retries": attempts,
        "retry_delay_seconds": retry_delays(backoff, attempts),
        "retry_jitter_factor": settings.RETRY_JITTER_FACTOR if jitter_factor is None else jitter_factor,
        "retry_condition_fn": retry_if_transient,
    }


BOTOCORE_MAX_BACKOFF_SECONDS = 20  # botocore's standard retry mode waits at most this long between its attempts


def worst_case_failure_seconds(server_accepts_connections: bool = False) -> float:
    """The longest a network step keeps failing before its run fails, from the settings: Prefect's retry waits at
    their jittered maximum, plus every try's own botocore attempts at their timeouts.

    An endpoint that is down (refuses or drops connections) costs a connect timeout per botocore attempt; one that
    accepts connections and never answers costs a read timeout instead.
    """
    waits = sum(retry_delays(settings.RETRY_BACKOFF_SECONDS, settings.RETRY_ATTEMPTS)) * (
        1 + settings.RETRY_JITTER_FACTOR
    )
    timeout = settings.S3_CONNECT_TIMEOUT_SECONDS + (
        settings.S3_READ_TIMEOUT_SECONDS if server_accepts_connections else 0
    )
    per_try = settings.S3_CLIENT_ATTEMPTS * timeout + (settings.S3_CLIENT_ATTEMPTS - 1) * BOTOCORE_MAX_BACKOFF_SECONDS
    return waits + (settings.RETRY_ATTEMPTS + 1) * per_try
