"""`latest`: the newest month whose file is actually published, checked rather than assumed.

TLC publishes a month's file about two months after it ends, but not on a fixed day. A scheduled run that
assumed "now minus two months" would, on a late month, fail on a 404 or, worse, report a month that was never
processed. So the calendar only suggests where to start: the suggested month's file is checked (an HTTP HEAD
on its URL, or an existence check for a local or `s3://` template) and, if it is not out yet, the month before,
up to `LATEST_LOOKBACK_MONTHS` months back. The result says which month was chosen and why, for the run's log.

"Not published" means the server answered that the file is not there (HTTP 404, or 403, which is how S3 behind
CloudFront answers for a key it does not have). Anything else (a timeout, HTTP 503) means the check could not
tell: the run fails with that error rather than silently processing an older month.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime

import fsspec

from tasks import settings
from tasks.months import Month, format_source, latest_published
from tasks.observe.run_log import step_logger
from tasks.pipeline.extract import SourceError

NOT_PUBLISHED_STATUSES = (403, 404)


@dataclass(frozen=True)
class PublicationCheck:
    """One month looked for: where, and what the source answered."""

    month: Month
    uri: str
    published: bool
    answer: str  # e.g. "HTTP 200", "HTTP 404", "found", "no such file"


@dataclass(frozen=True)
class LatestChoice:
    """How `latest` was resolved: the month chosen, the month the calendar suggested, and every check made."""

    month: Month
    suggested: Month
    checks: tuple[PublicationCheck, ...]

    def describe(self) -> str:
        """One line for the run's log, e.g. `latest = 2026-08: 2026-09 not published yet (HTTP 404); ...`."""
        steps = "; ".join(
            f"{check.month} {'published' if check.published else 'not published yet'} ({check.answer})"
            for check in self.checks
        )
        return f"latest = {self.month} (the calendar suggested {self.suggested}): {steps}"


def is_published(uri: str) -> tuple[bool, str]:
    """Whether the file at `uri` exists, and the answer that says so; raises `SourceError` when it cannot tell."""
    if uri.startswith(("http://", "https://")):
        request = urllib.request.Request(uri, method="HEAD")  # noqa: S310 (http(s) only, checked above)
        try:
            with urllib.request.urlopen(  # noqa: S310 (http(s) only: the scheme is checked above)
                request, timeout=settings.PUBLICATION_CHECK_TIMEOUT_SECONDS
            ) as response:
                return True, f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            if error.code in NOT_PUBLISHED_STATUSES:
                return False, f"HTTP {error.code}"
            raise SourceError(f"{uri}: cannot tell whether it is published: HTTP {error.code}") from error
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise SourceError(f"{uri}: cannot tell whether it is published: {reason}") from error
    filesystem, path = fsspec.core.url_to_fs(uri, **settings.fsspec_options(uri))
    return (True, "found") if filesystem.exists(path) else (False, "no such file")


def resolve_latest(service: str, template: str, now: datetime) -> LatestChoice:
    """The newest month of `service` published under `template`, starting from the month `now` suggests.

    Steps back one month at a time, at most `settings.LATEST_LOOKBACK_MONTHS` times; fails with every answer
    when none of those months is published. The choice is logged (to the flow run's log inside a run).
    """
    delay = settings.PUBLICATION_DELAY_MONTHS
    suggested = latest_published(now, delay)
    checks: list[PublicationCheck] = []
    for step in range(settings.LATEST_LOOKBACK_MONTHS + 1):
        month = latest_published(now, delay + step)
        uri = format_source(template, service, month)
        published, answer = is_published(uri)
        checks.append(PublicationCheck(month, uri, published, answer))
        if published:
            choice = LatestChoice(month, suggested, tuple(checks))
            step_logger(__name__).info("%s", choice.describe())
            return choice
    answers = "; ".join(f"{check.uri}: {check.answer}" for check in checks)
    raise SourceError(
        f"latest: no {service} file is published for any month from {suggested} back to {checks[-1].month} ({answers})"
    )
