"""`scheduler_growth`: whether an existing Dask cluster's scheduler (as `make dask` starts one, `servers.start_dask`)
grows run after run.

Consecutive `taxi_etl` runs of tiny months on one cluster (the scale section's two-worker cluster, before its own
runs: `benchmarks/scale.py`), the scheduler process's RSS read from `/proc` after each (its process id is the one
`servers` recorded). The first run costs the scheduler a one-time step (it deserializes what the first Prefect
client sends, importing libraries), so growth is the slope over the runs after it.
"""

from __future__ import annotations

import shutil
import statistics
import sys
from pathlib import Path

from distributed import Client, Scheduler

from benchmarks.harness import Size
from data.generate import MonthFile, write_months
from servers import scheduler_pid
from tasks.months import Month
from tasks.observe.measure import Result

LESSON = "flows/etl.py"
GROWTH_MIB_PER_RUN = 1.0  # the scheduler's RSS may grow at most this much per run after the first
TINY_ROWS = 3_000  # the scheduler_growth months: the flow's and the cluster's overhead is what is measured


def rss_mib(pid: int) -> float:
    """The resident memory of process `pid` now (`VmRSS`), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:"))


def scheduler_growth(size: Size, workdir: Path, name: str, address: str, client: Client) -> Result:
    """The row, measured on the cluster `servers.start_dask(..., name=name)` started at `address` (no run yet)."""
    from flows.etl import taxi_etl_on

    months = ["2025-01", "2025-02"]
    folder = workdir / "tiny-source"
    write_months([MonthFile("yellow", Month.parse(month), TINY_ROWS, folder) for month in months], jobs=1)
    source = str(folder / "{service}_tripdata_{month}.parquet")
    pid = scheduler_pid(name)
    rss = [rss_mib(pid)]
    for run in range(size.flow_runs):
        output = workdir / f"growth-{run}"
        taxi_etl_on("dask", address)(service="yellow", months=months, source=source, output=str(output))
        shutil.rmtree(output, ignore_errors=True)
        rss.append(rss_mib(pid))

    def scheduler_state(dask_scheduler: Scheduler) -> dict:
        """What the scheduler holds after the runs (`run_on_scheduler` passes it by this parameter's name). Nested,
        so it travels by value: importing this module there would import Prefect into the process measured."""
        return {
            "tasks": len(dask_scheduler.tasks),
            "clients": len(dask_scheduler.clients),
            "plugins": sorted(dask_scheduler.plugins),
            "prefect imported": "prefect" in sys.modules,
        }

    state = client.run_on_scheduler(scheduler_state)
    after = rss[2:]  # after the second run onwards: the first run's one-time step left out
    slope = statistics.linear_regression(range(len(after)), after).slope
    result = Result.from_repeats(
        "scheduler_growth",
        f"scheduler RSS (MiB) of an existing Dask cluster over {size.flow_runs} consecutive taxi_etl runs of"
        f" {len(months)} months of {TINY_ROWS:,} rows: after runs 2-4 vs after the last 3",
        after[:3],
        after[-3:],
        len(months) * TINY_ROWS,
        unit="MiB",
        lesson=LESSON,
        target=f"<= {GROWTH_MIB_PER_RUN:g} MiB per run (slope from run 2 on)",
        note=f"the scheduler's RSS grew {slope:+.2f} MiB per run over runs 2-{size.flow_runs}; the first run added"
        f" {rss[1] - rss[0]:.0f} MiB once ({rss[0]:.0f} -> {rss[1]:.0f} MiB)",
        details=[
            {
                "MiB per run (slope from run 2 on)": round(slope, 3),
                "RSS MiB before any run": round(rss[0], 1),
                "RSS MiB after run 1": round(rss[1], 1),
                "RSS MiB after each run": [round(value, 1) for value in rss[1:]],
                "scheduler after the runs": state,
            }
        ],
    )
    result.met = slope <= GROWTH_MIB_PER_RUN
    return result
