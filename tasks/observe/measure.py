"""Measuring: wall time and peak memory of a piece of work, and the shape of a benchmark result.

Used by the lessons (each prints its own effect on the data it ran on) and by `benchmarks/run.py`. A figure a
reviewer can trust is a repeated one: `timings` and `interleaved_timings` keep every sample, and a `Result` built
`from_repeats` reports their median with min and max, so the spread is visible next to the headline number.
"""

from __future__ import annotations

import contextvars
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from tasks.observe.peak_memory import peak_rss_bytes

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Result:
    """One optimization measured against its baseline, in one run, on one machine.

    `baseline` and `optimized` are medians when the repeats are recorded (`from_repeats`); `unit` says what they
    count (`s`, `s/month`, `MiB`) and `lesson` which module of the project the row measures. `details` holds rows
    of a supporting table (every serializer measured, the Dask cluster start) that the report prints below.
    """

    name: str
    metric: str
    baseline: float
    optimized: float
    rows: int
    target: str = ""
    met: bool | None = None
    note: str = ""
    unit: str = "s"
    lesson: str = ""
    baseline_repeats: list[float] = field(default_factory=list)
    optimized_repeats: list[float] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_repeats(
        cls, name: str, metric: str, baseline: Sequence[float], optimized: Sequence[float], rows: int, **fields: Any
    ) -> Result:
        """A result whose figures are the medians of the recorded repeats (the median ignores one outlier)."""
        return cls(
            name,
            metric,
            statistics.median(baseline),
            statistics.median(optimized),
            rows,
            baseline_repeats=list(baseline),
            optimized_repeats=list(optimized),
            **fields,
        )

    @property
    def ratio(self) -> float:
        """baseline / optimized: how many times better the optimized variant is (above 1 is better)."""
        return self.baseline / self.optimized if self.optimized else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """The JSON row: medians as `baseline`/`optimized`, every sample under `repeats`, and their range."""
        repeats = {
            "baseline": self.baseline_repeats or [self.baseline],
            "optimized": self.optimized_repeats or [self.optimized],
        }
        row = asdict(self)
        for name in ("baseline_repeats", "optimized_repeats"):
            del row[name]
        return {
            **row,
            "ratio": round(self.ratio, 4),
            "repeats": repeats,
            "min": {variant: min(samples) for variant, samples in repeats.items()},
            "max": {variant: max(samples) for variant, samples in repeats.items()},
        }


def spread(samples: Sequence[float]) -> dict[str, float]:
    """Median, min and max of some samples, for tables of supporting figures."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def seconds(work: Callable[[], Any], repeat: int = 1) -> float:
    """The best wall time of `repeat` runs of `work()` (best, not mean: noise only ever adds time)."""
    return min(timings(work, repeat))


def timings(work: Callable[[], Any], repeat: int) -> list[float]:
    """The wall time of each of `repeat` runs of `work()`, in order."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return samples


def interleaved_timings(works: Mapping[str, Callable[[], Any]], repeat: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time several variants alike: `warmup` untimed calls of each, then `repeat` rounds that call each once.

    Alternating the variants spreads any drift of the machine (another process, a warming cache) over all of
    them, and the warm-up keeps one-off costs (imports, first-call setup) out of every variant, not just some.
    """
    for work in works.values():
        for _ in range(warmup):
            work()
    samples: dict[str, list[float]] = {label: [] for label in works}
    for _ in range(repeat):
        for label, work in works.items():
            samples[label] += timings(work, 1)
    return samples


def peak_rss_mib() -> float:
    """This process's own peak resident memory so far, in MiB (`tasks.observe.metrics.peak_rss_bytes`, never a
    parent's)."""
    return peak_rss_bytes() / 2**20


peak_rss_mb = peak_rss_mib  # the name the lessons use; the figure has always been MiB


def map_in_context(pool: Executor, work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """`pool.map(work, items)`, each call in a copy of the caller's context variables.

    The run's Prefect server reaches this process through `temporary_settings`, a context variable, which a pool's
    threads do not inherit: there `run_child` would find no server URL, and each child would start a temporary
    server of its own (tens of seconds each on a loaded machine). Like `pool.map`, every call is submitted at once
    and the results come in order as they are iterated."""
    calls = [(contextvars.copy_context(), item) for item in items]  # one copy each: a context runs in one thread
    return pool.map(lambda call: call[0].run(work, call[1]), calls)


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
