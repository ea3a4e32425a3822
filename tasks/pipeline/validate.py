"""Validate: split a month's normalized rows into clean trips and quarantined rows with a reason code.

Before any row is judged, the file as a whole is checked against the month it was given for: a file whose pickups
mostly fall in other months is the wrong file (or the wrong `--month`), not a month of bad rows. Quarantining all
of it would replace that month's partition with nothing, so the run is refused instead.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from tasks.months import Month
from tasks.redact import RedactsUrls
from tasks.settings import MAX_SHARE_OUTSIDE_MONTH

# How many of the months a file holds a wrong-month error names, most rows first.
MONTHS_NAMED = 3


class WrongMonthError(RedactsUrls, ValueError):
    """Most of a file's pickups fall outside the month it was given for: the file or the month is wrong."""


def months_held(table: pa.Table) -> dict[str, int]:
    """Rows per pickup month (`YYYY-MM`), most rows first; rows without a pickup time are not counted."""
    pickups = table.column("pickup_datetime")
    keys = pc.add(pc.multiply(pc.year(pickups), 100), pc.month(pickups)).drop_null()
    counts = sorted(pc.value_counts(keys).to_pylist(), key=lambda c: (-c["counts"], c["values"]))
    return {f"{c['values'] // 100:04d}-{c['values'] % 100:02d}": c["counts"] for c in counts}


def check_month_matches(table: pa.Table, month: Month) -> None:
    """Raise `WrongMonthError` when more than `MAX_SHARE_OUTSIDE_MONTH` of the dated pickups are in other months.

    Real files carry some stray rows (a few from the previous day, the odd 2009 date): those stay a row-level
    matter for the `pickup_outside_month` rule. Only a file that is mostly somewhere else is refused.
    """
    check_months_held(months_held(table), month)


def check_months_held(held: dict[str, int], month: Month) -> None:
    """`check_month_matches` on rows already counted per pickup month (`months_held`, most rows first), so a
    streaming plan can count them in a small group-by instead of holding the month."""
    dated = sum(held.values())
    outside = dated - held.get(str(month), 0)
    if dated and outside / dated > MAX_SHARE_OUTSIDE_MONTH:
        named = ", ".join(f"{m} ({n:,} row{'s' * (n != 1)})" for m, n in list(held.items())[:MONTHS_NAMED])
        more = f" and {len(held) - MONTHS_NAMED} other month(s)" if len(held) > MONTHS_NAMED else ""
        raise WrongMonthError(
            f"refusing month {month}: {outside:,} of {dated:,} pickups ({outside / dated:.0%}) fall outside it; "
            f"the file holds {named}{more}. Check --month or --source; nothing was written."
        )
