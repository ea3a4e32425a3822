"""Deployments: every prefect file checked statically, and prefect.yaml deployed and run end to end by a worker."""

from __future__ import annotations

import importlib.util
import os
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from prefect.workers.process import ProcessWorker
from prefect_docker.worker import DockerWorker
from prefect_kubernetes.worker import KubernetesWorker

import servers
from data.generate import write_month as generate_month
from flows.mart import build_sample_lake
from tasks import settings
from tasks.lake import month_lineage
from tasks.months import Month, latest_published
from tasks.schema import NEW_YORK
from tests.factories import written_rows
from tests.polling import eventually
from tools import ui_screenshots
from tools.deployment_runs import api as request_api
from tools.deployment_runs import deploy, final_states, project_copy, start_worker, trigger
from tools.ui_screenshots import CACHING

ROOT = settings.PROJECT_ROOT
PREFECT_FILES = [ROOT / "prefect.yaml", *sorted((ROOT / "deploy").glob("prefect-*.yaml"))]


def deployments(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text())["deployments"]


def load_flow(entrypoint: str) -> Flow:
    path, name = entrypoint.split(":")
    spec = importlib.util.spec_from_file_location(f"entrypoint_{Path(path).stem}", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [str(key), *strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("path", PREFECT_FILES, ids=lambda p: p.name)
def test_every_deployment_is_valid(path):
    found = deployments(path)
    assert len({d["name"] for d in found}) == len(found), "deployment names must be unique"
    for deployment in found:
        flow = load_flow(deployment["entrypoint"])
        assert isinstance(flow, Flow), deployment["name"]
        flow.validate_parameters(deployment.get("parameters") or {})
        assert deployment["work_pool"]["name"] and deployment["description"] and deployment["tags"]
        for schedule in deployment.get("schedules") or []:
            CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))


@pytest.mark.parametrize("path", PREFECT_FILES, ids=lambda p: p.name)
def test_no_absolute_paths(path):
    document = yaml.safe_load(path.read_text())
    absolute = [s for s in strings(document) if re.match(r"^(/|~|[A-Za-z]:\\)", s)]
    assert absolute == []


# A work pool renders a job from its base job template and silently drops a job variable the template does not
# reference (PrefectHQ/prefect#17588). Each file's pools are checked against the default template of their worker
# type, read from the installed worker package, so an upgrade that renames a variable fails here.
POOL_WORKERS = {
    "prefect.yaml": ProcessWorker,
    "prefect-docker.yaml": DockerWorker,
    "prefect-kubernetes.yaml": KubernetesWorker,
}


def referenced_variables(job_configuration) -> set[str]:
    """The `{{ name }}` placeholders of a base job template's job configuration, at any depth."""
    return {name for text in strings(job_configuration) for name in re.findall(r"{{\s*(\w+)\s*}}", text)}


@pytest.mark.parametrize("path", PREFECT_FILES, ids=lambda p: p.name)
def test_every_job_variable_is_one_the_pool_template_uses(path):
    template = POOL_WORKERS[path.name].get_default_base_job_template()
    used = referenced_variables(template["job_configuration"])
    validator = jsonschema.Draft202012Validator(template["variables"])
    for deployment in deployments(path):
        variables = {**(deployment["work_pool"].get("job_variables") or {}), **(deployment.get("job_variables") or {})}
        assert set(variables) <= used, (deployment["name"], set(variables) - used)
        errors = [error.message for error in validator.iter_errors(variables)]
        assert errors == [], (deployment["name"], errors)


def test_the_template_check_catches_a_variable_the_pool_would_drop():
    template = KubernetesWorker.get_default_base_job_template()
    assert {"cpu_request", "memory_limit", "image"} <= referenced_variables(template["job_configuration"])
    assert "cpu" not in referenced_variables(template["job_configuration"])


def test_each_deployment_runs_the_flow_of_its_name():
    """The UI shows runs as `<flow>/<run>` and deployments as `<deployment>`: one name for both, so a user finds one
    from the other. The ETL is the exception by design: one flow, `taxi_etl`, deployed three ways (`etl-<what>`)."""
    for deployment in deployments(ROOT / "prefect.yaml"):
        flow_name = load_flow(deployment["entrypoint"]).name
        if flow_name == "taxi_etl":
            assert deployment["name"].startswith("etl-"), deployment["name"]
        else:
            assert flow_name == deployment["name"], (deployment["entrypoint"], flow_name, deployment["name"])


def test_every_flow_has_a_local_deployment():
    entrypoints = {d["entrypoint"] for d in deployments(ROOT / "prefect.yaml")}
    for module in sorted((ROOT / "flows").glob("*.py")):
        source = module.read_text()
        for match in re.finditer(r"@flow\([^)]*\)\ndef (\w+)", source):
            subflows_of_other_flows = {"s3_results", "dask_months", "mart_on_cluster"}
            if match.group(1) not in subflows_of_other_flows:
                assert f"flows/{module.name}:{match.group(1)}" in entrypoints, match.group(1)


def test_scheduled_etl_resolves_the_latest_month():
    by_name = {d["name"]: d for d in deployments(ROOT / "prefect.yaml")}
    for name in ("etl-yellow", "etl-green"):
        assert by_name[name]["parameters"]["months"] == ["latest"]
        assert by_name[name]["schedules"] and by_name[name]["concurrency_limit"]["limit"] == 1


# End to end: a real server, `prefect deploy --all` from a fresh copy, a process worker, every local deployment.


def end_to_end_runs(clone: Path, out: Path) -> dict[str, list[str]]:
    """Every local deployment's run by hand (`--param`s), `tools/ui_screenshots.py`'s runs among them."""
    sample = str(clone / "data" / "sample" / "{service}_tripdata_{month}.parquet")
    etl = [f"source={sample}", 'months=["2025-01"]', f"output={out}"]
    return {
        **ui_screenshots.screenshot_runs(out),
        "taxi_etl/etl-yellow": etl,
        "taxi_etl/etl-green": etl,
        "taxi_etl/etl-yellow-dask": [f"source={sample}", 'months=["2025-01"]', f"output={out / 'dask-etl'}"],
        "lesson-disk-io-in-memory/lesson-disk-io-in-memory": [],
        "taxi-mart/taxi-mart": [f"lake={out / 'mart-lake'}", "engine=polars"],  # built before the runs start
        "lake-maintenance/lake-maintenance": [f"output={out / 'maintenance-lake'}"],
        "lake-rollback/lake-rollback": [f"output={out / 'mart-lake'}", "version=0"],  # the lake built beforehand
        "benchmark/benchmark": ["quick=true", "rows=5000", 'only=["quote", "serializer"]'],
    }


@pytest.fixture(scope="module")
def prefect_deployment_server(tmp_path_factory, prefect_home):
    """A real `prefect server` started as `make server` starts it, with its own home; stopped (with the worker)
    afterwards. Its scheduler loops every 5 s instead of 60 s, so a schedule's runs appear quickly."""
    base = tmp_path_factory.mktemp("deploy")
    previous_run_dir, settings.RUN_DIR = settings.RUN_DIR, base / "run"
    home = prefect_home(base / "prefect-home")
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    try:
        api = servers.start_prefect(
            {"PREFECT_HOME": env["PREFECT_HOME"], "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"}
        )["PREFECT_API_URL"]
        yield base, api, {**env, "PREFECT_API_URL": api}
    finally:
        servers.stop()
        settings.RUN_DIR = previous_run_dir


@pytest.fixture(scope="module")
def deployed(prefect_deployment_server):
    """A fresh copy of the project deployed the way `make deploy` does it: `(clone, deploy's output)`."""
    base, _, env = prefect_deployment_server
    clone = project_copy(base / "clone")
    result = deploy(clone, {**env, "PWD": str(clone)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return clone, result.stdout


def test_deploy_says_once_how_to_start_the_worker(deployed):
    _, printed = deployed
    assert printed.count("make worker") == 1 and "prefect worker start" not in printed
    assert printed.count("successfully created") == len(deployments(ROOT / "prefect.yaml"))


def test_the_ui_is_served_and_pointed_at_its_own_server(prefect_deployment_server):
    _, api, _ = prefect_deployment_server
    assert request_api(api.removesuffix("/api"), "/ui-settings")["api_url"] == api
    with urllib.request.urlopen(api.removesuffix("/api") + "/", timeout=10) as page:
        assert page.status == 200 and "<html" in page.read().decode().lower()


def flow_runs_of(api: str, deployment_id: str, states: tuple[str, ...] = ()) -> list[dict]:
    """The deployment's flow runs, in the given state types (all when none are given)."""
    query: dict = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
    if states:
        query["flow_runs"]["state"] = {"type": {"any_": list(states)}}
    return request_api(api, "/flow_runs/filter", query)


def scheduled_runs(api: str, deployment_id: str) -> list[dict]:
    return flow_runs_of(api, deployment_id, ("SCHEDULED",))


def test_monthly_schedules_create_runs_on_the_server(prefect_deployment_server, deployed):
    """The server's own scheduler (not the test) turns each deployed schedule into scheduled flow runs."""
    _, api, _ = prefect_deployment_server
    new_york = ZoneInfo("America/New_York")
    for name in ("etl-yellow", "etl-green"):
        deployment = request_api(api, f"/deployments/name/taxi_etl/{name}")
        created = lambda deployment_id=deployment["id"]: scheduled_runs(api, deployment_id)  # noqa: E731
        runs = eventually(created, f"{name}: a run the scheduler created", 120, 1)
        for run in runs:
            starts = datetime.fromisoformat(run["expected_start_time"]).astimezone(new_york)
            assert run["auto_scheduled"] and (starts.day, starts.hour, starts.minute) == (5, 6, 0), run
            assert starts > datetime.now(new_york)


@pytest.fixture(scope="module")
def deployment_runs(prefect_deployment_server, deployed) -> dict:
    """Every local deployment run by a process worker, and `lesson-caching` once more after its first run (as
    `make screenshots` does): their flow run ids and final states by deployment name, the cached rerun's id, the
    output root, and the scheduled `latest` run's month and output."""
    base, api, env = prefect_deployment_server
    clone, _ = deployed
    out = base / "out"
    in_clone = {**env, "PWD": str(clone)}
    build_sample_lake(str(out / "mart-lake"))  # the mart reads a lake: one the concurrent ETL runs do not touch
    flow_runs = {
        name: trigger(name, parameters, clone, in_clone) for name, parameters in end_to_end_runs(clone, out).items()
    }
    latest_month, scheduled_out = schedule_latest_run_soon(api, base)
    start_worker(api, in_clone)
    flow_runs["etl-yellow, scheduled for latest"] = wait_for_scheduled_run(api, "taxi_etl/etl-yellow", scheduled_out)
    states = final_states(api, flow_runs)
    rerun = ui_screenshots.rerun_caching(api, out, clone, in_clone) if states[CACHING]["type"] == "COMPLETED" else None
    return {
        **{"ids": flow_runs, "states": states, "caching rerun": rerun, "out": out},
        **{"latest": latest_month, "scheduled_out": scheduled_out},
    }


def test_deploy_and_run_every_local_deployment(prefect_deployment_server, deployed, deployment_runs):
    _, api, _ = prefect_deployment_server
    clone, _ = deployed
    states, out = deployment_runs["states"], deployment_runs["out"]
    latest_month, scheduled_out = deployment_runs["latest"], deployment_runs["scheduled_out"]
    not_completed = {
        name: (state["type"], (state.get("message") or "")[:300])
        for name, state in states.items()
        if state["type"] != "COMPLETED"
    }
    assert not not_completed, not_completed
    for service in ("yellow", "green"):
        assert written_rows(out, service, "2025-01")["trips"] > 0
    assert written_rows(out, "yellow", "2025-02")["trips"] > 0  # etl-sample: both months
    assert written_rows(out / "disk-io", "yellow", "2025-01") and written_rows(out / "dask", "yellow", "2025-01")
    assert written_rows(out / "dask-etl", "yellow", "2025-01")["trips"] > 0  # etl-yellow-dask: on a LocalCluster
    assert written_rows(scheduled_out, "yellow", str(latest_month)), sorted(scheduled_out.rglob("*.parquet"))
    # the months' commits name the deployment that wrote them: from a thread of the flow run, and from a Dask worker
    assert month_lineage(str(scheduled_out), "yellow", latest_month)["deployment"] == "etl-yellow"
    assert month_lineage(str(out / "dask-etl"), "yellow", Month(2025, 1))["deployment"] == "etl-yellow-dask"
    # perf-report is the one deployment not run by hand: its trigger runs it after each completed taxi_etl run
    # (tests/test_automations.py waits for such a run to complete; here it is enough that the trigger fired).
    perf_report = request_api(api, "/deployments/name/perf-report/perf-report")
    assert flow_runs_of(api, perf_report["id"]), "no perf-report run: its trigger did not fire"
    run_by_hand = {name.split("/")[1] for name in end_to_end_runs(clone, out)}
    assert run_by_hand | {"perf-report"} == {d["name"] for d in deployments(ROOT / "prefect.yaml")}


def test_an_etl_sample_run_page_lists_its_months_and_holds_its_summary(
    prefect_deployment_server, deployment_runs, tmp_path
):
    """The page of an `etl-sample` run a worker made from its deployment, opened in Chromium as a user opens it:
    the Task Runs tab lists one task run per month, the Artifacts tab holds the run's summary, and the browser
    logs no error (a subflow's result passed to a task once made this page log `Invalid TaskInputResponse`)."""
    if not ui_screenshots.chromium_path() or not importlib.util.find_spec("playwright"):
        pytest.skip("no Chromium (make system-deps) or no playwright (make setup)")
    from playwright.sync_api import sync_playwright

    _, api, _ = prefect_deployment_server
    page_url = f"{api.removesuffix('/api')}/runs/flow-run/{deployment_runs['ids']['taxi_etl/etl-sample']}"
    errors: list[str] = []  # console errors other than a failed load (those are judged by their URL below)
    failed: list[str] = []  # URLs the page could not load
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=ui_screenshots.chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "console",
                lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else 0,
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
            page.goto(page_url)
            page.get_by_text("Task Runs", exact=True).first.click(timeout=60_000)  # as `make screenshots` does
            for month in settings.SAMPLE_MONTHS:
                page.get_by_text(f"month-yellow-{month}").first.wait_for(state="visible", timeout=60_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=tmp_path / "task-runs.png", full_page=True)
            assert page.get_by_text("No task runs").count() == 0
            page.get_by_text("Artifacts", exact=True).first.click(timeout=60_000)
            page.get_by_text("taxi-etl-yellow").first.wait_for(state="visible", timeout=60_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=tmp_path / "artifacts.png", full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    # Prefect's UI (3.9.1) asks for an icon it has no name for, `/ico/undefined.svg`, on every flow run page, a
    # command-line run's too: its own asset, not this run's data. Every other load, the API's above all, succeeds.
    assert [url for url in failed if not url.endswith("/ico/undefined.svg")] == [], failed


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCREENSHOTS = sorted(
    [
        *["artifact.png", "deployments.png", "flow-run.png", "timeline.png"],  # taxi_etl and the deployments
        *["quote-task-inputs.png", "quote-task-inputs-quoted.png", "caching-rerun.png", "compression-artifact.png"],
        *["s3-results-artifact.png", "disk-io-artifact.png", "dask-task-runs.png", "monitoring-artifact.png"],
    ]
)


def test_every_screenshot_shows_what_it_is_taken_for(prefect_deployment_server, deployment_runs, tmp_path):
    """`make screenshots`' pages, captured from these deployment runs as the command captures them from its own: a
    page that does not render what it is taken for (a month's task run, the summary artifact, a deployment, a
    lesson's `Cached` task runs or its artifact) fails here instead of shipping as a blank image."""
    if not ui_screenshots.chromium_path() or not importlib.util.find_spec("playwright"):
        pytest.skip("no Chromium (make system-deps) or no playwright (make setup)")
    _, api, _ = prefect_deployment_server
    assert deployment_runs["caching rerun"], f"{CACHING} did not complete: {deployment_runs['states'][CACHING]}"
    pages = ui_screenshots.pages(api, deployment_runs["ids"], deployment_runs["caching rerun"])
    saved = ui_screenshots.capture(api.removesuffix("/api"), pages, tmp_path / "ui")
    assert sorted(saved) == SCREENSHOTS
    for path in saved.values():
        assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 20_000, path


def test_the_committed_screenshots_are_the_ones_the_command_writes():
    committed = sorted(path.name for path in ui_screenshots.IMAGES_DIR.glob("*.png"))
    assert committed == SCREENSHOTS


def promised_names(prefixes: tuple[str, ...]) -> set[str]:
    """The task-run names or artifact keys the README and the course pages name (`<service>` read as yellow).
    A task-run name is also anything shaped like one: `<step>-<service>[-YYYY-MM]`, artifact keys aside."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    quoted = {name for page in pages for name in re.findall(r"`([a-z][\w<>-]*)`", page.read_text())}
    shaped = re.compile(r"[a-z][a-z-]*-(yellow|green|<service>)(-\d{4}-\d{2})?")
    deployment_names = {d["name"] for d in deployments(ROOT / "prefect.yaml")}
    run_shaped = {n for n in quoted if shaped.fullmatch(n) and not n.startswith("taxi-") and n not in deployment_names}
    named = {name for name in quoted if name.startswith(prefixes)}
    if "month-" in prefixes:
        named |= run_shaped
    return {name.replace("<service>", "yellow") for name in named if "<" not in name.replace("<service>", "")}


def test_the_task_runs_and_artifacts_the_docs_name_are_on_an_etl_sample_run(prefect_deployment_server, deployment_runs):
    _, api, _ = prefect_deployment_server
    run_id = deployment_runs["ids"]["taxi_etl/etl-sample"]
    task_runs = request_api(api, "/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    artifacts = request_api(api, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    promised_runs = promised_names(("month-", "publish-summary-", "load-zones"))
    promised_keys = promised_names(("taxi-etl-", "taxi-task-metrics"))
    assert promised_runs and promised_keys  # the README names some of each
    names = {run["name"] for run in task_runs}
    # A task without a run-name template gets Prefect's suffix (`load-zones-549`): its name is the promise then.
    missing = {name for name in promised_runs if not any(n == name or n.startswith(f"{name}-") for n in names)}
    assert not missing, (missing, names)
    assert promised_keys <= {artifact["key"] for artifact in artifacts}, promised_keys


def schedule_latest_run_soon(api: str, base: Path) -> tuple[Month, Path]:
    """Give etl-yellow one more schedule, firing once ~40 s from now, whose run resolves `latest` from its scheduled
    time like the monthly one does, against a local folder holding that month (synthetic, generated here)."""
    fires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=40)
    suggested = latest_published(fires_at.astimezone(ZoneInfo(NEW_YORK)), settings.PUBLICATION_DELAY_MONTHS)
    source_dir, output = base / "scheduled-source", base / "scheduled-out"
    generate_month("yellow", suggested, 2_000, source_dir)
    deployment = request_api(api, "/deployments/name/taxi_etl/etl-yellow")
    rrule = f"DTSTART:{fires_at:%Y%m%dT%H%M%SZ}\nRRULE:FREQ=MINUTELY;COUNT=1"
    request_api(
        api,
        f"/deployments/{deployment['id']}/schedules",
        [
            {
                "schedule": {"rrule": rrule, "timezone": "UTC"},
                "active": True,
                "parameters": {"source": str(source_dir / "{service}_tripdata_{month}.parquet"), "output": str(output)},
            }
        ],
    )
    return suggested, output


def wait_for_scheduled_run(api: str, deployment_name: str, output: Path, timeout: float = 120) -> str:
    """The id of the run the server's scheduler created for the extra schedule (recognised by its output)."""
    deployment = request_api(api, f"/deployments/name/{deployment_name}")

    def created() -> str | None:
        runs = flow_runs_of(api, deployment["id"])
        ours = [r["id"] for r in runs if r["auto_scheduled"] and r["parameters"].get("output") == str(output)]
        return ours[0] if ours else None

    return eventually(created, f"{deployment_name}: a run the scheduler created for the extra schedule", timeout, 1)
