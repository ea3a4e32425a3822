"""Exercise 1 (quote): hand a large collection to a task without Prefect walking through it."""

from typing import Any

from prefect.utilities.annotations import quote


def hand_over_untouched(rows: list[dict[str, Any]]) -> quote[list[dict[str, Any]]]:
    """Wrap the rows so Prefect passes them to the task as they are: no walk, no dependency tracking."""
    return quote(rows)
