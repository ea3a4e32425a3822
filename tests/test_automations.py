"""Automations on a real Prefect server: perf-report's deployment trigger fires when taxi_etl completes, and the
project's automation runs perf-report when a `taxi.quarantine.high` event arrives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import servers
from blocks.automations import QUARANTINE_AUTOMATION
from tasks import settings
from tests.polling import eventually
from tools.deployment_runs import api as request_api
from tools.deployment_runs import final_states, project_copy

BIN = Path(sys.executable).parent
TRIGGER_NAME = "perf-report-after-taxi-etl"  # prefect.yaml, perf-report's trigger


@pytest.fixture(scope="module")
def monitored_server(tmp_path_factory, prefect_home):
    """A real `prefect server` (its trigger and action services on) with the project's pool, the `perf-report`
    deployment (from a fresh copy, as `prefect deploy -n perf-report` does it) and the automations created, and a
    worker: `(base, api, env, clone, outputs of blocks.automations before the deploy, once and twice after)`."""
    base = tmp_path_factory.mktemp("automations")
    previous_run_dir, settings.RUN_DIR = settings.RUN_DIR, base / "run"
    home = prefect_home(base / "prefect-home")
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    try:
        api = servers.start_prefect({"PREFECT_HOME": env["PREFECT_HOME"]})["PREFECT_API_URL"]
        env = {**env, "PREFECT_API_URL": api}
        clone = project_copy(base / "clone")

        def run(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                argv, cwd=clone, env={**env, "PWD": str(clone)}, capture_output=True, text=True, timeout=300
            )

        automations = [run(sys.executable, "-m", "blocks.automations")]
        for step in (
            (str(BIN / "prefect"), "work-pool", "create", servers.WORK_POOL, "--type", "process"),
            (str(BIN / "prefect"), "--no-prompt", "deploy", "-n", "perf-report"),
        ):
            done = run(*step)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        automations += [run(sys.executable, "-m", "blocks.automations") for _ in range(2)]
        servers.start_worker(api, env={"PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_HOME": env["PREFECT_HOME"]})
        yield base, api, env, clone, automations
    finally:
        servers.stop()
        settings.RUN_DIR = previous_run_dir


def automations_named(api: str, name: str) -> list[dict]:
    return [a for a in request_api(api, "/automations/filter", {}) if a["name"] == name]


def perf_report_runs(api: str, created_by: str) -> list[dict]:
    """perf-report's flow runs created by the automation (or deployment trigger) called `created_by`."""
    deployment = request_api(api, "/deployments/name/perf-report/perf-report")
    runs = request_api(api, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}})
    return [r for r in runs if (r.get("created_by") or {}).get("display_value") == created_by]


def test_automations_need_the_deployment_and_are_created_once(monitored_server):
    _, api, _, _, (before_deploy, first, second) = monitored_server
    assert before_deploy.returncode == 1 and "skipped: deploy perf-report/perf-report first" in before_deploy.stdout
    assert first.returncode == 0 and f"automation {QUARANTINE_AUTOMATION}: created" in first.stdout, first.stderr
    assert second.returncode == 0 and f"automation {QUARANTINE_AUTOMATION}: exists" in second.stdout, second.stderr
    (automation,) = automations_named(api, QUARANTINE_AUTOMATION)
    deployment = request_api(api, "/deployments/name/perf-report/perf-report")
    assert automation["actions"] == [
        {**automation["actions"][0], "type": "run-deployment", "deployment_id": deployment["id"]}
    ]
    assert len(automations_named(api, TRIGGER_NAME)) == 1  # the deployment trigger, created by the deploy


def test_a_completed_taxi_etl_run_triggers_the_perf_report(monitored_server, tmp_path):
    _, api, env, clone, _ = monitored_server
    sample = clone / "data" / "sample" / "yellow_tripdata_2025-01.parquet"
    arguments = ["--service", "yellow", "--month", "2025-01", "--source", str(sample), "--output", str(tmp_path)]
    etl = subprocess.run(
        [sys.executable, "-m", "flows.etl", *arguments],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert etl.returncode == 0, etl.stdout[-3000:] + etl.stderr[-3000:]
    (run,) = eventually(lambda: perf_report_runs(api, TRIGGER_NAME), "a perf-report run created by the trigger", 300, 2)
    state = final_states(api, {"the triggered perf-report run": run["id"]})["the triggered perf-report run"]
    assert state["type"] == "COMPLETED", state.get("message")
    report = (clone / "reports" / "perf" / "perf-report.md").read_text()
    assert "Performance of the last 1 run(s)" in report and "**Bottleneck: `etl-month`**" in report
    # One taxi_etl run, one report: the lessons' runs and the report's own run must not trigger another.
    assert len(perf_report_runs(api, TRIGGER_NAME)) == 1


def test_a_quarantine_high_event_runs_the_perf_report(monitored_server):
    _, api, env, clone, _ = monitored_server
    emit = (
        "from prefect.events import emit_event\n"
        "from prefect.events.worker import EventsWorker\n"
        "emit_event('taxi.quarantine.high', resource={'prefect.resource.id': 'taxi.month.yellow.2025-01',"
        " 'taxi.service': 'yellow', 'taxi.month': '2025-01'}, payload={'quarantine_ratio': 0.2, 'threshold': 0.05})\n"
        "EventsWorker.drain_all()\n"
    )
    emitted = subprocess.run([sys.executable, "-c", emit], cwd=clone, env=env, capture_output=True, text=True)
    assert emitted.returncode == 0, emitted.stderr[-3000:]
    created = lambda: perf_report_runs(api, QUARANTINE_AUTOMATION)  # noqa: E731
    (run,) = eventually(created, "a perf-report run created by the automation", 300, 2)
    state = final_states(api, {"the perf-report run": run["id"]})["the perf-report run"]
    assert state["type"] == "COMPLETED", state.get("message")
