"""Which months to process and where each month's file is: the run plan, resolved before any work starts.

Resolving everything up front means a malformed month or an impossible combination of arguments fails the
run before the first file is read, with a message that says what to change. `latest` is the one month that
needs the network to resolve: see `resolve_latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo

from tasks import settings
from tasks.months import LATEST, Month, MonthFormatError, format_source, latest_published
from tasks.pipeline.publication import LatestChoice, resolve_latest
from tasks.schema import NEW_YORK

_MONTH_IN_NAME = re.compile(r"(\d{4})-(\d{2})")


def is_template(source: str) -> bool:
    return "{" in source


def infer_month(source: str) -> Month:
    """The month in a TLC-style file name (`..._2023-01.parquet`), for a single source given without a month."""
    match = _MONTH_IN_NAME.search(PurePosixPath(source).name)
    if not match:
        raise MonthFormatError(f"{source}: no YYYY-MM in the file name; give the month explicitly")
    return Month.parse(match.group(0))


def scheduled_time(scheduled: datetime | None) -> datetime:
    """A run's scheduled start (`prefect.runtime.flow_run.scheduled_start_time`, a pendulum DateTime) as a plain New
    York datetime, else now: what `latest` is resolved against, so a late run still picks the month it was for."""
    if not scheduled:
        return datetime.now()
    return datetime.fromtimestamp(scheduled.timestamp(), ZoneInfo(NEW_YORK)).replace(tzinfo=None)


def resolve_month(text: str, now: datetime | None = None) -> Month:
    """A `YYYY-MM` month, or `latest`: the newest month TLC has published at `now` (a scheduled run's time)."""
    if str(text).strip().lower() == LATEST:
        return latest_published(now or datetime.now(), settings.PUBLICATION_DELAY_MONTHS)
    return Month.parse(text)


@dataclass(frozen=True)
class RunPlan:
    """The months of one run with their source URIs, and how `latest` was chosen when it was asked for."""

    months: list[tuple[Month, str]]
    latest: LatestChoice | None = field(default=None)


def plan_months(
    service: str, months: list[str] | None, source: str | None, now: datetime | None = None
) -> list[tuple[Month, str]]:
    """`[(month, source URI)]` for one service: `plan_run(...).months`."""
    return plan_run(service, months, source, now).months


def plan_run(service: str, months: list[str] | None, source: str | None, now: datetime | None = None) -> RunPlan:
    """The run plan for one service.

    - no months and no source: the committed synthetic sample;
    - months and no source: TLC's official monthly files;
    - a template source (`{service}`, `{month}`, `{year}`, `{mm}`): one file per month;
    - a single file: exactly one month (given, or read from the file name).

    A month may be `latest`. With a template (TLC's URL by default) it is the newest month whose file is
    published, checked over the network from the month `now` suggests (`resolve_latest`); the plan's `latest`
    says which month was chosen and why. A plain `YYYY-MM` is never checked: its file is read when the month
    runs, and a missing one fails there. With a single file, `latest` only names the month of that file.
    """
    if service not in settings.SERVICES:
        raise ValueError(f"unknown service {service!r}: choose one of {', '.join(settings.SERVICES)}")
    if not months and not source:
        months, source = list(settings.SAMPLE_MONTHS), settings.SAMPLE_SOURCE
    template = source or settings.TLC_TRIP_URL
    if not is_template(template):
        parsed = [resolve_month(m, now) for m in months] if months else [infer_month(template)]
        if len(parsed) != 1:
            raise ValueError(
                f"{template}: one file cannot serve {len(parsed)} months; pass one month per run or a template "
                "such as 'data/{service}_tripdata_{month}.parquet'"
            )
        return RunPlan([(parsed[0], template)])
    if not months:
        raise ValueError(f"{template}: a source template needs at least one month")
    wants_latest = any(str(m).strip().lower() == LATEST for m in months)
    latest = resolve_latest(service, template, now or datetime.now()) if wants_latest else None
    parsed = {resolve_month(m) for m in months if str(m).strip().lower() != LATEST}
    if latest:
        parsed.add(latest.month)
    return RunPlan([(month, format_source(template, service, month)) for month in sorted(parsed)], latest)


def sample_plan(
    service: str, months: list[str] | None, source: str = settings.SAMPLE_SOURCE
) -> list[tuple[Month, str]]:
    """The lessons' plan: like `plan_months`, but the committed sample's months when none are given."""
    return plan_months(service, months or list(settings.SAMPLE_MONTHS), source)
