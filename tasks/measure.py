"""Measuring: wall time and peak memory of a piece of work, and the shape of a benchmark result.

Used by the lessons (each prints its own effect on the data it ran on) and by `benchmarks/run.py`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Result:
    """One optimization measured against its baseline, in one run, on one machine."""

    name: str
    metric: str
    baseline: float
    optimized: float
    rows: int
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        """baseline / optimized: how many times better the optimized variant is (above 1 is better)."""
        return self.baseline / self.optimized if self.optimized else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 4)}


def seconds(work: Callable[[], Any], repeat: int = 1) -> float:
    """The best wall time of `repeat` runs of `work()` (best, not mean: noise only ever adds time)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(module: str, *args: str) -> dict:
    """Run `python -m module args` in a fresh process and return the JSON object it prints last.

    Peak memory is only comparable between fresh processes: a process's high-water mark never goes down.
    """
    from prefect.settings import PREFECT_API_URL

    environment = dict(os.environ)
    if api_url := PREFECT_API_URL.value():  # share this process's Prefect server instead of starting another
        environment["PREFECT_API_URL"] = api_url
    completed = subprocess.run(
        [sys.executable, "-m", module, *args], check=False, capture_output=True, text=True, env=environment
    )
    if completed.returncode != 0:
        raise RuntimeError(f"python -m {module} {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
