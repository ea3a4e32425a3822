"""What a lesson measured, where its user looks: a table artifact on the flow run, and the same rows in its log.

A lesson run from a deployment has no terminal to print to. The artifact (stable key, one per lesson, e.g.
`lesson-quote`) appears on the run's Artifacts tab and, by key, on the UI's Artifacts page, each run a new
version; the log lines carry the same numbers for whoever reads the run's logs instead.
"""

from __future__ import annotations

import math
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact


def format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def format_rows(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned plain-text table (columns in first-seen order)."""
    columns = list(dict.fromkeys(column for row in rows for column in row))
    cells = [columns, *([format_cell(row.get(column, "")) for column in columns] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells)
    return "\n".join(line.rstrip() for line in lines)


def publish_lesson_table(key: str, rows: list[dict[str, Any]], description: str) -> list[dict[str, Any]]:
    """Publish `rows` as the table artifact `key` of the current flow run and log them; returns `rows`.

    Call it inside a flow run. `key` must be lowercase letters, digits and dashes (Prefect's rule for keys).
    """
    create_table_artifact(table=rows, key=key, description=description)
    get_run_logger().info("%s\n%s", description, format_rows(rows))
    return rows
