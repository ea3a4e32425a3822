"""Calendar months as the pipeline's unit of work: parsing `YYYY-MM` and the month's time window."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

_MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


class MonthFormatError(ValueError):
    """A month argument that is not a real `YYYY-MM` month."""


@dataclass(frozen=True, order=True)
class Month:
    """One calendar month. Trips belong to the month of their pickup (naive New York local time)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse `YYYY-MM`, rejecting anything else with a message that names the bad value."""
        match = _MONTH_PATTERN.match(str(text).strip())
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2009:
            raise MonthFormatError(f"malformed month {text!r}: expected YYYY-MM, e.g. 2025-01 (TLC data starts 2009)")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def start(self) -> datetime:
        """First instant of the month (inclusive)."""
        return datetime(self.year, self.month, 1)

    @property
    def end(self) -> datetime:
        """First instant of the next month (exclusive)."""
        return datetime(self.year + self.month // 12, self.month % 12 + 1, 1)

    @property
    def first_day(self) -> date:
        return self.start.date()

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


LATEST = "latest"


def latest_published(now: datetime, delay_months: int) -> Month:
    """The newest month TLC has published at `now`: it publishes each month about `delay_months` later."""
    index = now.year * 12 + (now.month - 1) - delay_months
    return Month(index // 12, index % 12 + 1)


def format_source(template: str, service: str, month: Month) -> str:
    """Fill a source template's `{service}`, `{month}`, `{year}` and `{mm}` placeholders."""
    return template.format(service=service, month=str(month), year=f"{month.year:04d}", mm=f"{month.month:02d}")
