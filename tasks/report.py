"""Run summaries: what each month did (rows in, clean, quarantined by reason, step times) as an artifact.

The summary is plain data (JSON-serializable dataclasses), so a flow can return it, the command line can print
it, and a later monitoring report can read the same fields from run history.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from prefect import task
from prefect.artifacts import create_markdown_artifact


@dataclass
class MonthSummary:
    service: str
    month: str
    source: str
    rows_in: int = 0
    rows_clean: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    finished_at: float = 0.0  # wall-clock time (epoch seconds) when the month was done: for throughput

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Record the wall time of one step (Prefect's own overhead for the task call included)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.step_seconds[step] = round(time.perf_counter() - started, 3)


@dataclass
class RunSummary:
    service: str
    engine: str
    output_root: str
    zones_origin: str
    months: list[MonthSummary] = field(default_factory=list)
    seconds: float = 0.0
    failure: str = ""  # "<service> <month>: <error>" for each failed month, joined by "; "
    latest: str = ""  # how `latest` was resolved, when it was asked for

    def to_dict(self) -> dict:
        return asdict(self)


def render_markdown(summary: RunSummary) -> str:
    """A human-readable account of the run, used for both the Prefect artifact and the terminal."""
    lines = [
        f"## taxi_etl: {summary.service}, engine {summary.engine}, {summary.seconds:.1f} s",
        "",
        f"Output: `{summary.output_root}`  ",
        f"Zone table: {summary.zones_origin}" + ("  " if summary.latest else ""),
        *([f"Month chosen: {summary.latest}"] if summary.latest else []),
        "",
        "| month | rows in | clean | quarantined | by reason | step seconds |",
        "|---|---:|---:|---:|---|---|",
    ]
    for month in summary.months:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in month.quarantined_by_reason.items()) or "-"
        steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in month.step_seconds.items())
        lines.append(
            f"| {month.month} | {month.rows_in:,} | {month.rows_clean:,} | {month.rows_quarantined:,} "
            f"| {reasons} | {steps} |"
        )
    if summary.failure:
        lines += ["", f"**Failed:** {summary.failure}. A failed month wrote nothing; the months above were written."]
    lines += ["", "Outputs:", *(f"- `{uri}`" for month in summary.months for uri in month.outputs.values())]
    return "\n".join(lines)


@task(name="publish-summary", task_run_name="publish-summary-{summary.service}")
def publish_summary(summary: RunSummary) -> str:
    """Publish the run summary as a markdown artifact (shown on the flow run's Artifacts tab)."""
    markdown = render_markdown(summary)
    key = f"taxi-etl-{summary.service}"
    create_markdown_artifact(markdown=markdown, key=key, description=f"taxi_etl summary ({summary.service})")
    return markdown
