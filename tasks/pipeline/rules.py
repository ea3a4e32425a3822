"""Validation rules: each has a reason code, and a failing row is quarantined under the first rule it breaks.

The rules are data here and are implemented once per engine (`tasks/pipeline/engines/`); a parity test holds the engines
to identical results. Durations are measured between real instants, not wall-clock times: see
`DURATION_ON_INSTANTS` for how daylight-saving changes are handled. Order matters: a row with no pickup time
cannot be checked against its month, so `missing_value` runs first, and each later rule may assume the earlier
ones passed.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.settings import MAX_AVG_SPEED_MPH, MAX_SHARE_OUTSIDE_MONTH, MAX_TRIP_HOURS, MAX_TRIP_MILES


@dataclass(frozen=True)
class Rule:
    reason: str
    description: str


RULES = (
    Rule(
        "missing_value",
        "pickup or dropoff time, distance, zone or total amount is null (normalize reads NaN and infinities as null)",
    ),
    Rule(
        "pickup_outside_month",
        "pickup (wall clock) is not inside the requested month: TLC files carry stray days and years; a file "
        f"with more than {MAX_SHARE_OUTSIDE_MONTH:.0%} of its pickups outside the month is refused as a whole",
    ),
    Rule("dropoff_not_after_pickup", "dropoff is at or before pickup, as real instants (across DST changes too)"),
    Rule("implausible_duration", f"trip lasts more than {MAX_TRIP_HOURS} hours (between real instants)"),
    Rule("implausible_distance", f"trip distance is negative or above {MAX_TRIP_MILES} miles"),
    Rule("implausible_speed", f"average speed above {MAX_AVG_SPEED_MPH} mph"),
    Rule("non_positive_total", "total amount is zero or negative (refunds, voids, no-charge trips)"),
    Rule(
        "unknown_zone",
        "pickup or dropoff LocationID is not in the zone table, or its borough there is 'Unknown' "
        "(zone 264 in TLC's table; zone 265, 'Outside of NYC', is known)",
    ),
)
REASONS = tuple(rule.reason for rule in RULES)

# How both engines measure a trip's duration (used by three rules and by `transform`).
DURATION_ON_INSTANTS = """
TLC's timestamps are naive New York wall-clock times. Durations are measured between real instants, each time
localized to America/New_York, so a trip across a daylight-saving change lasts what it lasted:
- a time in the skipped spring hour (02:00-02:59 on the March change day) does not exist on the clock; it is read
  with the offset in force before the change (EST), as a meter not yet moved forward shows it: 02:30 is 03:30 EDT;
- a time in the repeated autumn hour (01:00-01:59 on the November change day) happened twice; each trip takes the
  readings of its pickup and dropoff that give the shortest positive duration (most trips are short), so 01:50 ->
  01:05 is a 15-minute trip, not a dropoff before the pickup. When no reading is positive, the first readings are
  used and the trip is quarantined as `dropoff_not_after_pickup`.
Everything else (the month a pickup belongs to, pickup date, hour and weekday) stays on the wall clock, as TLC
publishes it.
"""
MICROSECONDS_PER_HOUR = 3_600_000_000
MAX_TRIP_MICROSECONDS = MAX_TRIP_HOURS * MICROSECONDS_PER_HOUR


class InvariantError(AssertionError):
    """Rows were lost or duplicated between input and outputs: a bug, never a data problem."""


def check_row_invariant(rows_in: int, rows_clean: int, rows_quarantined: int, what: str) -> None:
    """Every input row ends up in exactly one of the two outputs."""
    if rows_in != rows_clean + rows_quarantined:
        raise InvariantError(
            f"{what}: {rows_in} rows in but {rows_clean} clean + {rows_quarantined} quarantined "
            f"= {rows_clean + rows_quarantined}"
        )
