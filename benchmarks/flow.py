"""The benchmark as a flow, so it can be deployed and run by a worker (`benchmark` in prefect.yaml).

It runs `benchmarks/run.py` against the Prefect server the worker uses and returns the results document.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from benchmarks import run
from tasks.observe.metrics_publish import monitored


@monitored
@flow(name="benchmark")
def benchmark(quick: bool = True, rows: int | None = None, repeats: int = 3, only: list[str] | None = None) -> dict:
    """Measure every lesson against its baseline (`repeats` times each, at least 3; `only` names cases to run, as
    in `benchmarks.cases.CASES`); publishes the results table as an artifact."""
    with tempfile.TemporaryDirectory(prefix="taxi-bench-out-") as folder:
        out = Path(folder)
        arguments = ["--out", str(out), "--repeats", str(repeats), *(["--quick"] if quick else [])]
        arguments += ["--rows", str(rows)] if rows else []
        arguments += [argument for name in only or [] for argument in ("--only", name)]
        run.main(arguments)
        create_markdown_artifact(markdown=(out / "results.md").read_text(), key="taxi-benchmark")
        return json.loads((out / "results.json").read_text())
