"""The scale section's plan and rows: which runs are measured, and the rows of issues 8 and 19 built from them.

Pure functions of the measured runs (`benchmarks/scale.py` measures them), so that what a row claims can be read
here in one place: which samples are its baseline and optimized sides, and how its target is checked. Rows that
measure the same runs share them (`taxi_etl` on threads over the year is a side of `year_wall`, `year_linearity`
and `overhead_year`; on the two-worker cluster, of `year_wall`, `dask_year` and `dask_scaling`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from tasks.observe.measure import Result, spread

BIG_MONTH_FACTOR = 4  # the month whose peak must stay near a normal month's (issue 8: 12M against 3M rows)
WORKERS = 2  # processes of bare polars' parallel variant and Dask workers: the machine's cores
BARE_2 = "bare polars, 2 processes"
THREADS, DASK = "taxi_etl, threads", "taxi_etl, existing Dask cluster"
DASK_ONE = "taxi_etl, existing 1-worker Dask cluster"  # dask_scaling's baseline, at the year only
SEQUENTIAL = "taxi_etl, one month at a time"  # the threads runner with one thread: dask_year's baseline
PANDAS = "taxi_etl, pandas engine (in memory)"  # one month: year_peak_rss and month_peak_rss baseline
BIG_MONTH = f"taxi_etl, threads, one {BIG_MONTH_FACTOR}x month"
CURVE = (BARE_2, THREADS, DASK)  # the variants measured at every month count
AT_YEAR = (*CURVE, SEQUENTIAL, DASK_ONE)  # the variants measured over the year
# issue 8's targets, on a 2-core machine, and issue 19's year_wall
FLOW_OVER_BARE = 1.15  # the year on taxi_etl's best runner at most this many times bare polars' in 2 processes
LINEAR = 1.2  # cost per month at the year at most this many times one month's
PROCESS_MIB = 1024.0  # every process's peak at the year
# issue 19's: a month's flow process peak, and the big month's at most this many times it
MONTH_MIB, MONTH_GROWTH = 600.0, 1.15
DASK_SPEEDUP = 1.6
OVERHEAD_YEAR = 1.05  # taxi_etl's seconds over a year at most this many times bare polars'
SCALING = 1.8  # two workers' throughput at least this many times one worker's (90% scaling efficiency)
LESSON = "flows/etl.py"


@dataclass(frozen=True)
class Job:
    """One measurement to make: a variant over the first `months` months, in round `repeat`."""

    variant: str
    months: int
    repeat: int


@dataclass
class Run:
    """One measured run: its wall seconds, the rows it read and the peak MiB of each of its processes."""

    job: Job
    seconds: float
    rows: int
    peaks: dict[str, float]  # "flow" (or "process 1", ...) and "worker 1", ... -> peak RSS MiB


def planned(points: tuple[int, ...], repeats: int) -> list[Job]:
    """Every curve variant at every month count once (the chart's points between the first and the year), and
    `repeats` times each measurement a row rests on: the first count and the year. Interleaved (each round runs
    every variant), so that a busy machine's drift spreads over all of them."""
    first, year = points[0], points[-1]
    jobs = []
    for repeat in range(repeats):
        for months in points if repeat == 0 else (first, year):
            variants = AT_YEAR if months == year else (THREADS, DASK) if months == first and repeat else CURVE
            jobs += [Job(variant, months, repeat) for variant in variants]
        jobs += [Job(PANDAS, 1, repeat), Job(BIG_MONTH, 1, repeat)]
    return jobs


def curve(runs: list[Run]) -> list[dict]:
    """One row per variant and month count: wall seconds, rows per second and peak MiB, as median (min-max)."""
    order = [*AT_YEAR, PANDAS, BIG_MONTH]
    keys = sorted({(run.job.variant, run.job.months) for run in runs}, key=lambda k: (order.index(k[0]), k[1]))
    rows = []
    for variant, months in keys:
        group = [run for run in runs if (run.job.variant, run.job.months) == (variant, months)]
        processes = list(group[0].peaks)
        each = " / ".join(f"{name} {statistics.median(run.peaks[name] for run in group):.0f}" for name in processes)
        rows.append(
            {
                "runner": variant,
                "months": months,
                "runs": len(group),
                "wall s": spread([run.seconds for run in group]),
                "rows/s": spread([run.rows / run.seconds for run in group]),
                "largest process peak MiB": spread([max(run.peaks.values()) for run in group]),
                "peak MiB by process (medians)": each,
            }
        )
    return rows


def scale_results(runs: list[Run], rows: int, points: tuple[int, ...], cluster: dict) -> list[Result]:
    """The rows from the runs: `rows` per month, `points` the month counts (the last is the year), `cluster`
    the Dask cluster's start and worker restarts in seconds, reported apart."""
    first, year = points[0], points[-1]

    def of(variant: str, months: int) -> list[Run]:
        return [run for run in runs if (run.job.variant, run.job.months) == (variant, months)]

    def seconds(variant: str, months: int) -> list[float]:
        return [run.seconds for run in of(variant, months)]

    def largest_at_year(repeat: int) -> float:
        at_year = [run for run in runs if run.job.months == year and run.job.repeat == repeat]
        return max(peak for run in at_year if run.job.variant in AT_YEAR for peak in run.peaks.values())

    best = min((THREADS, DASK), key=lambda variant: statistics.median(seconds(variant, year)))
    year_rows, big_rows = year * rows, BIG_MONTH_FACTOR * rows
    wall = Result.from_repeats(
        "year_wall",
        f"wall seconds for {year} months of {rows:,} rows: bare polars in {WORKERS} processes vs taxi_etl on its"
        f" best runner ({best})",
        seconds(BARE_2, year),
        seconds(best, year),
        year_rows,
        lesson=LESSON,
        target=f">= {1 / FLOW_OVER_BARE:.2f}x (taxi_etl within {FLOW_OVER_BARE:g}x of bare polars' seconds)",
        details=curve(runs),
    )
    wall.met = wall.ratio >= 1 / FLOW_OVER_BARE
    linear = Result.from_repeats(
        "year_linearity",
        f"seconds per month, taxi_etl on {best}: over {year} months vs over {first} (a cost: lower is better)",
        [run / year for run in seconds(best, year)],
        [run / first for run in seconds(best, first)],
        rows,
        unit="s/month",
        lesson=LESSON,
        target=f"<= {LINEAR:g}x (cost per month at {year} months within {LINEAR - 1:.0%} of {first})",
    )
    linear.met = linear.ratio <= LINEAR
    rounds = sorted({run.job.repeat for run in runs if run.job.months == year})
    peak = Result.from_repeats(
        "year_peak_rss",
        f"peak RSS: taxi_etl's in-memory pandas path on one month (flow process) vs the largest of any process"
        f" at {year} months (flow processes, Dask workers, bare polars processes)",
        [max(run.peaks.values()) for run in of(PANDAS, 1)],
        [largest_at_year(repeat) for repeat in rounds],
        year_rows,
        unit="MiB",
        lesson=LESSON,
        target=f"every process <= {PROCESS_MIB:g} MiB",
    )
    peak.met = peak.optimized <= PROCESS_MIB
    month_peak = Result.from_repeats(
        "month_peak_rss",
        f"flow process peak RSS, one {rows:,}-row month: taxi_etl with the in-memory pandas engine vs the polars"
        " engine (threads)",
        [run.peaks["flow"] for run in of(PANDAS, 1)],
        [run.peaks["flow"] for run in of(THREADS, 1)],
        rows,
        unit="MiB",
        lesson=LESSON,
        target=f"polars <= {MONTH_MIB:g} MiB",
    )
    month_peak.met = month_peak.optimized <= MONTH_MIB
    growth = Result.from_repeats(
        "month_peak_rss_growth",
        f"flow process peak RSS, taxi_etl on threads: one {big_rows:,}-row month vs one {rows:,}-row month"
        " (a cost: lower is better)",
        [run.peaks["flow"] for run in of(BIG_MONTH, 1)],
        [run.peaks["flow"] for run in of(THREADS, 1)],
        rows,
        unit="MiB",
        lesson=LESSON,
        target=f"<= {MONTH_GROWTH:g}x",
    )
    growth.met = growth.ratio <= MONTH_GROWTH
    dask = Result.from_repeats(
        "dask_year",
        f"wall seconds for {year} months: taxi_etl one month at a time vs on an existing {WORKERS}-worker Dask"
        " cluster, cluster start apart",
        seconds(SEQUENTIAL, year),
        seconds(DASK, year),
        year_rows,
        lesson=LESSON,
        target=f">= {DASK_SPEEDUP:g}x",
        details=[{name: spread(samples) for name, samples in cluster.items()}],
    )
    dask.met = dask.ratio >= DASK_SPEEDUP
    overhead = Result.from_repeats(
        "overhead_year",
        f"seconds for {year} months: taxi_etl on threads vs the same month functions without Prefect (bare polars in"
        f" {WORKERS} processes), each a fresh process (a cost: lower is better)",
        seconds(THREADS, year),
        seconds(BARE_2, year),
        year_rows,
        lesson=LESSON,
        target=f"flow <= {OVERHEAD_YEAR:g}x plain",
    )
    overhead.met = overhead.ratio <= OVERHEAD_YEAR
    scaling = Result.from_repeats(
        "dask_scaling",
        f"wall seconds per month over {year} months of {rows:,} rows, taxi_etl in a fresh flow process on an existing"
        " Dask cluster (`servers.start_dask`, single-threaded workers, MONTH=1 each): 1 worker vs 2, cluster starts"
        " apart",
        [run / year for run in seconds(DASK_ONE, year)],
        [run / year for run in seconds(DASK, year)],
        year_rows,
        unit="s/month",
        lesson=LESSON,
        target=f">= {SCALING:g}x",
        details=[
            {
                "workers": workers,
                "wall s": spread(seconds(variant, year)),
                "months/s": spread([year / run for run in seconds(variant, year)]),
            }
            for workers, variant in ((1, DASK_ONE), (WORKERS, DASK))
        ],
    )
    scaling.met = scaling.ratio >= SCALING
    return [wall, linear, peak, month_peak, growth, dask, overhead, scaling]
