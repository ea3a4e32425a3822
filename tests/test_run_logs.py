"""A data step's log lines reach the flow run's log page: stored by a real Prefect server with the run that logged
them, as the UI reads them back.

`taxi_etl` runs in its own process against a real `prefect server` (the session's, started as `make server` starts
it), and the logs of its runs are read back through Prefect's client, so nothing here depends on how the lines got
there: a module logger that only prints to the terminal fails it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterTags,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks import settings

# Run in a fresh process: the zone table comes from a loopback server instead of TLC, into an empty cache, as
# `--zones tlc` would fetch it; the rest is the user's `taxi_etl` on the green sample (whose `ehail_fee` column is
# dropped by normalize, with a log line), in the pandas engine, which normalizes with `tasks.schema`. Its runs carry
# a tag of their own: the server holds other tests' runs too.
DRIVER = """
import sys
from pathlib import Path

from prefect import tags
from tasks import settings

settings.ZONES_CACHE, settings.TLC_ZONES_URL = Path(sys.argv[1]), sys.argv[2]
from flows.etl import taxi_etl

with tags(sys.argv[4]):
    taxi_etl(service="green", months=["2025-01"], source=settings.SAMPLE_SOURCE, engine="pandas", zones="tlc",
             output=sys.argv[3])
"""


def test_data_step_warnings_are_stored_with_the_flow_runs_logs(real_prefect_server, http_root, tmp_path):
    folder, base_url = http_root
    shutil.copy(settings.SHIPPED_ZONES, folder / "zones.csv")
    cache = tmp_path / "zones-cache.csv"
    cache.write_text("LocationID,Borough,Zone,service_zone\n1,EWR,Newark Airport,EWR\n")  # too short: ignored
    real_server, tag = real_prefect_server["PREFECT_API_URL"], f"run-logs-{uuid.uuid4().hex[:12]}"
    environment = {
        **os.environ,
        "PREFECT_API_URL": real_server,
        "PREFECT_HOME": str(tmp_path / "client-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    finished = subprocess.run(
        [sys.executable, "-c", DRIVER, str(cache), f"{base_url}/zones.csv", str(tmp_path / "lake"), tag],
        cwd=settings.PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    with temporary_settings({PREFECT_API_URL: real_server}), get_client(sync_client=True) as client:
        runs = {
            run.id: run
            for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])))
        }
        ours = FlowRunFilter(id=FlowRunFilterId(any_=list(runs)))
        task_runs = {task_run.id: task_run for task_run in client.read_task_runs(flow_run_filter=ours)}
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=list(runs))))

    zone_warning = [log for log in logs if "ignoring the zone cache" in log.message]
    dropped = [log for log in logs if "dropping columns outside the canonical schema: ehail_fee" in log.message]
    assert len(zone_warning) == 1 and len(dropped) == 1, [log.message for log in logs]
    assert zone_warning[0].level == 30  # logging.WARNING
    # Each is stored with the task run that logged it, and on the page of the flow run that task run belongs to.
    assert task_runs[zone_warning[0].task_run_id].name.startswith("load-zones")
    assert task_runs[dropped[0].task_run_id].name == "month-green-2025-01"
    for log in (*zone_warning, *dropped):
        assert task_runs[log.task_run_id].flow_run_id == log.flow_run_id
