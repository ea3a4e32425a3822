"""Run summaries: what each month did (rows in, clean, quarantined by reason, and what its task run cost) as an
artifact.

The summary is plain data (JSON-serializable dataclasses), so a flow can return it and the command line can print
it. What each step cost (wall and CPU seconds, peak memory) is not timed here: it comes from the per-task metrics
records (`tasks/observe/metrics.py`), the same rows the `taxi-task-metrics` artifact and the monitoring read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tasks.observe.metrics import metered
from tasks.redact import redact_text, redact_url


@dataclass
class MonthSummary:
    service: str
    month: str
    source: str
    rows_in: int = 0
    rows_clean: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # {table: Delta table URI}
    versions: dict[str, int] = field(default_factory=dict)  # {table: the Delta version this month's write committed}
    bytes_read: int = 0  # the source file's size
    bytes_written: int = 0  # the committed files' sizes
    finished_at: float = 0.0  # wall-clock time (epoch seconds) when the month was done: for throughput

    def __post_init__(self) -> None:
        self.source = redact_url(self.source)  # a summary is returned, printed and published: never a credential

    def describe(self) -> str:
        """One log line's worth: `50,000 rows in, 49,400 clean, 600 quarantined {'unknown_zone': 400, ...}`."""
        return (
            f"{self.rows_in:,} rows in, {self.rows_clean:,} clean, {self.rows_quarantined:,} quarantined "
            f"{self.quarantined_by_reason}"
        )


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
    tasks: list[dict[str, Any]] = field(default_factory=list)  # the run's task metrics rows so far

    def __post_init__(self) -> None:
        self.output_root = redact_url(self.output_root)

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
        "| month | rows in | clean | quarantined | by reason | seconds | CPU seconds | peak RSS MiB |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    costs = {(row["service"], row["month"]): row for row in summary.tasks if row["month"]}
    for month in summary.months:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in month.quarantined_by_reason.items()) or "-"
        cost = costs.get((month.service, month.month))
        spent = (
            f"{cost['wall_seconds']:.2f} | {cost['cpu_seconds']:.2f} | {cost['peak_rss_bytes'] / 2**20:,.0f}"
            if cost
            else "- | - | -"
        )
        lines.append(
            f"| {month.month} | {month.rows_in:,} | {month.rows_clean:,} | {month.rows_quarantined:,} "
            f"| {reasons} | {spent} |"
        )
    if summary.failure:
        lines += ["", f"**Failed:** {summary.failure}. A failed month wrote nothing; the months above were written."]
    tables = dict.fromkeys(uri for month in summary.months for uri in month.outputs.values())  # each table once
    lines += ["", "Outputs:", *(f"- `{uri}`" for uri in tables)]
    return redact_text("\n".join(lines))  # failure messages and `latest` name sources


@metered
@task(name="publish-summary", task_run_name="publish-summary-{summary.service}")
def publish_summary(summary: RunSummary) -> str:
    """Publish the run summary as a markdown artifact (shown on the flow run's Artifacts tab)."""
    markdown = render_markdown(summary)
    key = f"taxi-etl-{summary.service}"
    create_markdown_artifact(markdown=markdown, key=key, description=f"taxi_etl summary ({summary.service})")
    return markdown
