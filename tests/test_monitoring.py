"""Prometheus monitoring against the real programs: the metrics a run pushes (`tasks/observe/prometheus.py`), the
alert rules,
the configurations, and the Grafana dashboard, whose every query must return data from a live Prometheus that
scraped a live Pushgateway and Prefect server. Skipped only when Debian's prometheus packages are absent (.ci/run
installs them; `make monitor-deps` does the same by hand)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import servers
from servers.monitor import MONITORING_DIR, PROMETHEUS_CONFIG, missing_binaries, render_config, start_monitor
from tasks import settings
from tasks.observe.prometheus import build_registry, push_run_metrics
from tests.polling import eventually

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed: make monitor-deps")
needs_servers = pytest.mark.skipif(
    bool(missing_binaries()), reason=f"{', '.join(missing_binaries())} not installed: make monitor-deps"
)
DASHBOARD = MONITORING_DIR / "grafana" / "dashboards" / "taxi-etl.json"
CONTRACT_METRICS = {
    "taxi_task_duration_seconds",
    "taxi_task_cpu_seconds",
    "taxi_task_peak_rss_bytes",
    "taxi_task_retries",
    "taxi_rows_total",
    "taxi_bytes_total",
    "taxi_quarantine_ratio",
    "taxi_run_duration_seconds",
    "taxi_last_success_timestamp_seconds",
    "taxi_last_run_succeeded",
}


def record(task: str, month: str = "", **figures) -> dict:
    """One row of the monitoring contract's `taxi-task-metrics` table (tasks/observe/metrics.py), zeros unless given."""
    row = {
        "flow": "taxi_etl",
        "flow_run_id": "6f1c3a52-0000-4000-8000-000000000001",
        "deployment": "",
        "task": task,
        "task_run": f"month-yellow-{month}" if month else task,
        "service": "",
        "month": month,
        "state": "COMPLETED",
        "started_at": 1_700_000_000.0,
        "quarantined_by_reason": "{}",
    }
    for name in ("wall_seconds", "cpu_seconds"):
        row[name] = float(figures.pop(name, 0.0))
    for name in ("peak_rss_bytes", "rows_in", "rows_out", "rows_quarantined", "bytes_read", "bytes_written", "retries"):
        row[name] = int(figures.pop(name, 0))
    assert not figures, f"not fields of the contract: {figures}"
    return row


# Two months of the month step and one summary step: what one taxi_etl run over two months records.
RUN_ROWS = [
    record(
        "etl-month",
        "2025-01",
        wall_seconds=3.0,
        cpu_seconds=2.5,
        peak_rss_bytes=400_000_000,
        rows_in=1000,
        rows_out=950,
        rows_quarantined=50,
        bytes_read=10_000,
        bytes_written=8_000,
        retries=1,
    ),
    record(
        "etl-month",
        "2025-02",
        wall_seconds=2.0,
        cpu_seconds=1.5,
        peak_rss_bytes=600_000_000,
        rows_in=1000,
        rows_out=1000,
        bytes_read=12_000,
        bytes_written=9_000,
    ),
    record("publish-summary", wall_seconds=0.2, cpu_seconds=0.1, peak_rss_bytes=300_000_000),
]


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Exposition text as {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def exposition(succeeded: bool = True, rows=RUN_ROWS) -> str:
    registry = build_registry(
        rows,
        flow="taxi_etl",
        deployment="etl-yellow",
        service="yellow",
        succeeded=succeeded,
        run_seconds=4.5,
        finished_at=1_700_000_100.0,
    )
    return generate_latest(registry).decode()


def labels(task: str | None = None, **extra: str) -> frozenset:
    run = {"flow": "taxi_etl", "deployment": "etl-yellow", "service": "yellow"}
    return frozenset({**run, **({"task": task} if task else {}), **extra}.items())


def test_months_are_aggregated_per_task():
    values = samples(exposition())
    assert values[("taxi_task_duration_seconds", labels("etl-month"))] == pytest.approx(5.0)
    assert values[("taxi_task_cpu_seconds", labels("etl-month"))] == pytest.approx(4.0)
    assert values[("taxi_task_peak_rss_bytes", labels("etl-month"))] == 600_000_000  # the largest, not a sum
    assert values[("taxi_task_retries", labels("etl-month"))] == 1
    assert values[("taxi_rows_total", labels("etl-month", kind="in"))] == 2000
    assert values[("taxi_rows_total", labels("etl-month", kind="clean"))] == 1950
    assert values[("taxi_rows_total", labels("etl-month", kind="quarantined"))] == 50
    assert values[("taxi_bytes_total", labels("etl-month", direction="read"))] == 22_000
    assert values[("taxi_bytes_total", labels("etl-month", direction="written"))] == 17_000
    assert values[("taxi_quarantine_ratio", labels("etl-month"))] == pytest.approx(50 / 2000)
    assert values[("taxi_task_duration_seconds", labels("publish-summary"))] == pytest.approx(0.2)
    assert ("taxi_quarantine_ratio", labels("publish-summary")) not in values  # it reads no rows: no ratio
    assert values[("taxi_run_duration_seconds", labels())] == pytest.approx(4.5)
    assert values[("taxi_last_run_succeeded", labels())] == 1
    assert values[("taxi_last_success_timestamp_seconds", labels())] == pytest.approx(1_700_000_100.0)
    assert {name for name, _ in values} == CONTRACT_METRICS


def test_no_run_specific_label_is_exposed():
    """Run ids, task-run names and months would make a new series per run: only flow, deployment, service, task,
    kind and direction may label a series."""
    names = {name for _, series in samples(exposition()) for name, _ in series}
    assert names == {"flow", "deployment", "service", "task", "kind", "direction"}


def test_a_failed_run_reports_failure_and_no_success_time():
    values = samples(exposition(succeeded=False))
    assert values[("taxi_last_run_succeeded", labels())] == 0
    assert not any(name == "taxi_last_success_timestamp_seconds" for name, _ in values)


@needs_promtool
def test_promtool_accepts_the_pushed_metrics():
    text = exposition()
    assert {name for name, _ in samples(text)} == CONTRACT_METRICS  # promtool passes empty input too
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked.stdout + checked.stderr


@needs_promtool
def test_alert_rules_pass_their_unit_tests():
    rule_tests = sorted((MONITORING_DIR / "tests").glob("*.yml"))
    assert rule_tests
    checked = subprocess.run([PROMTOOL, "test", "rules", *map(str, rule_tests)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_every_alert_has_a_unit_test():
    rules = yaml.safe_load((MONITORING_DIR / "rules" / "taxi.rules.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    tested = {
        case["alertname"]
        for path in (MONITORING_DIR / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested


@needs_promtool
def test_prometheus_configs_are_valid(tmp_path):
    """The compose configuration as committed, and as `make monitor` renders it for local servers."""
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(yaml.safe_dump(render_config("127.0.0.1:9091", "http://127.0.0.1:4200/api", "1s")))
    for config in (PROMETHEUS_CONFIG, rendered):
        checked = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "1 rule files found" in checked.stdout


def test_rendered_config_scrapes_the_local_servers():
    config = render_config("127.0.0.1:9091", "http://127.0.0.1:4200/api", "1s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"] == [{"targets": ["127.0.0.1:9091"]}]
    assert jobs["prefect-server"]["static_configs"] == [{"targets": ["127.0.0.1:4200"]}]
    assert jobs["prefect-server"]["metrics_path"] == "/api/metrics"
    assert all(Path(rules).is_file() for rules in config["rule_files"])
    without_prefect = render_config("127.0.0.1:9091", None)
    assert [job["job_name"] for job in without_prefect["scrape_configs"]] == ["pushgateway"]


def dashboard_targets() -> list[tuple[str, dict]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target) for panel in panels for target in panel.get("targets", [])]


def test_grafana_provisioning_fits_the_compose_file():
    """The dashboard's datasource is the provisioned one, and the provisioned paths are what compose mounts."""
    compose = yaml.safe_load((MONITORING_DIR / "docker-compose.yml").read_text())
    mounts = {
        target: (MONITORING_DIR / source).resolve()
        for volume in compose["services"]["grafana"]["volumes"]
        for source, target, *_ in [volume.split(":")]
        if source.startswith("./")
    }
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "taxi.yml").read_text())["providers"]
    assert DASHBOARD.parent == mounts[provider["options"]["path"]]
    uids = {source["uid"] for source in datasources if source["type"] == "prometheus"}
    assert datasources[0]["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    assert dashboard_targets()
    assert {target["datasource"]["uid"] for _, target in dashboard_targets()} <= uids
    prometheus_mounts = dict(volume.split(":")[:2] for volume in compose["services"]["prometheus"]["volumes"])
    assert (MONITORING_DIR / "rules" / "taxi.rules.yml").is_file() and "./rules" in prometheus_mounts


# ---------------------------------------------------------------------------------------------------------------
# Against live servers: a Prefect server with /api/metrics, a Pushgateway and a Prometheus scraping both every
# second, all started the way `make server` and `make monitor` start them, and stopped by process id.


@pytest.fixture(scope="module")
def monitor(tmp_path_factory, request):
    """A Pushgateway and a Prometheus (started as `make monitor` starts them, stopped by process id) scraping the
    session's real Prefect server: `{PREFECT_API_URL, PREFECT_HOME, TAXI_PUSHGATEWAY_URL, PROMETHEUS_URL}`."""
    if missing := missing_binaries():
        pytest.skip(f"{', '.join(missing)} not installed: make monitor-deps")
    base = tmp_path_factory.mktemp("monitor")
    previous_run_dir, settings.RUN_DIR = settings.RUN_DIR, base / "run"
    prefect = request.getfixturevalue("real_prefect_server")  # only once the programs are known to be there
    try:
        urls = start_monitor(prefect["PREFECT_API_URL"], interval="1s")
        yield {**prefect, **urls}
    finally:
        servers.stop(["monitor"])
        settings.RUN_DIR = previous_run_dir


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def query(prometheus: str, expr: str) -> list[dict]:
    """The result of an instant query; fails on a query Prometheus rejects."""
    answer = get_json(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


# Grafana's own variables, and the dashboard's ("All" is `.*`, its allValue), as Grafana would send them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}


def grafana_expression(expr: str, variables: list[dict]) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    for variable in variables:
        expr = expr.replace(f"${variable['name']}", variable["allValue"])
    assert "$" not in expr, f"a variable this test does not know: {expr}"
    return expr


def push_run(gateway: str, service: str, rows=RUN_ROWS, succeeded: bool = True, deployment: str = "") -> None:
    push_run_metrics(
        gateway,
        rows,
        flow="taxi_etl",
        deployment=deployment or f"etl-{service}",
        service=service,
        succeeded=succeeded,
        run_seconds=4.5,
    )


def test_every_dashboard_query_returns_data(monitor):
    prometheus = monitor["PROMETHEUS_URL"]
    push_run(monitor["TAXI_PUSHGATEWAY_URL"], "yellow")
    dashboard = json.loads(DASHBOARD.read_text())
    variables = dashboard["templating"]["list"]
    # rate() needs two scrapes of the Prefect server inside its window.
    eventually(lambda: query(prometheus, 'count_over_time(up{job="prefect-server"}[1m]) >= 2'), "two scrapes")
    for title, target in dashboard_targets():
        expr = grafana_expression(target["expr"], variables)
        eventually(lambda expr=expr: query(prometheus, expr), f"panel {title!r}: {expr}", timeout=30)
    for variable in variables:  # label_values(metric, label): the values Grafana offers in each drop-down
        metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"]).groups()
        metric = grafana_expression(metric, variables)
        found = get_json(f"{prometheus}/api/v1/label/{label}/values?{urllib.parse.urlencode({'match[]': metric})}")
        assert found["data"], variable["name"]
    assert query(prometheus, 'up{job="prefect-server"} == 1'), "the Prefect server's /api/metrics is scraped"


def test_alert_rules_load_and_fire_on_pushed_metrics(monitor):
    prometheus = monitor["PROMETHEUS_URL"]
    groups = get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded == {
        "TaxiStepSlowerThanUsual",
        "TaxiQuarantineRatioHigh",
        "TaxiNoRecentSuccess",
        "TaxiLastRunFailed",
        "TaxiMonitoringTargetDown",
    }
    quarantined = [record("etl-month", "2025-01", wall_seconds=1.0, rows_in=100, rows_out=80, rows_quarantined=20)]
    push_run(monitor["TAXI_PUSHGATEWAY_URL"], "green", quarantined, succeeded=False)

    def firing() -> set[str]:
        alerts = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        return {
            a["labels"]["alertname"] for a in alerts if a["state"] == "firing" and a["labels"].get("service") == "green"
        }

    eventually(lambda: {"TaxiQuarantineRatioHigh", "TaxiLastRunFailed"} <= firing(), "the green run's alerts")
    groups = get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    assert {rule["name"]: rule["health"] for group in groups for rule in group["rules"]} == dict.fromkeys(loaded, "ok")


def gateway_value(gateway: str, name: str, service: str) -> float | None:
    with urllib.request.urlopen(f"{gateway}/metrics", timeout=10) as response:
        for (sample, series), value in samples(response.read().decode()).items():
            if sample == name and dict(series).get("service") == service:
                return value
    return None


def test_a_failed_run_keeps_the_last_success_time(monitor):
    """A failed run must not erase when the last good one ended: the 35-day alert is computed from it."""
    gateway = monitor["TAXI_PUSHGATEWAY_URL"]
    push_run(gateway, "yellow", deployment="etl-failing")
    succeeded_at = gateway_value(gateway, "taxi_last_success_timestamp_seconds", "yellow")
    assert succeeded_at and succeeded_at <= time.time()
    push_run(gateway, "yellow", deployment="etl-failing", succeeded=False)
    with urllib.request.urlopen(f"{gateway}/metrics", timeout=10) as response:
        group = {
            sample: value
            for (sample, series), value in samples(response.read().decode()).items()
            if dict(series).get("deployment") == "etl-failing"
        }
    assert group["taxi_last_run_succeeded"] == 0
    assert group["taxi_last_success_timestamp_seconds"] == succeeded_at


def test_no_push_group_is_per_run(monitor):
    """The Pushgateway keeps every group forever: two runs of one deployment must share a single group."""
    gateway = monitor["TAXI_PUSHGATEWAY_URL"]
    for _ in range(2):
        push_run(gateway, "green", deployment="etl-twice")
    groups = get_json(f"{gateway}/api/v1/metrics")["data"]
    ours = [group["labels"] for group in groups if group["labels"].get("deployment") == "etl-twice"]
    assert ours == [{"job": "taxi", "flow": "taxi_etl", "deployment": "etl-twice", "service": "green"}]


def test_taxi_etl_run_pushes_its_metrics(monitor, tmp_path):
    """A real `python -m flows.etl` run on the sample with TAXI_PUSHGATEWAY_URL set: Prometheus finds its month step."""
    started = time.time()
    env = {
        **os.environ,
        "PREFECT_API_URL": monitor["PREFECT_API_URL"],
        "PREFECT_HOME": monitor["PREFECT_HOME"],
        "TAXI_PUSHGATEWAY_URL": monitor["TAXI_PUSHGATEWAY_URL"],
    }
    run = subprocess.run(
        [sys.executable, "-m", "flows.etl", "--service", "yellow", "--output", str(tmp_path / "lake")],
        cwd=settings.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    selector = '{service="yellow", deployment="", task="etl-month"}'  # the pushes above all name a deployment
    found = eventually(
        lambda: query(monitor["PROMETHEUS_URL"], f"taxi_task_duration_seconds{selector}"), "the run's month step"
    )
    assert float(found[0]["value"][1]) > 0
    pushed = query(monitor["PROMETHEUS_URL"], 'push_time_seconds{job="taxi", service="yellow", deployment=""}')
    assert float(pushed[0]["value"][1]) >= started


@needs_servers
def test_start_monitor_command_records_both_servers_and_stop_ends_them(tmp_path, monkeypatch, capsys):
    """`make monitor` then `make stop`: .run/monitor.env names two live servers; stop ends both by process id and
    removes the env file, so a later `make monitor` starts afresh instead of reporting dead servers as running."""
    from servers.__main__ import main

    monkeypatch.setattr(settings, "RUN_DIR", tmp_path / "run")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    try:
        assert main(["start", "monitor"]) == 0
        variables = dict(
            line.removeprefix("export ").split("=", 1)
            for line in (tmp_path / "run" / "monitor.env").read_text().splitlines()
        )
        assert set(variables) == {"TAXI_PUSHGATEWAY_URL", "PROMETHEUS_URL"}
        for url in variables.values():
            assert servers.http_ok(f"{url}/-/ready")
        pids = [int(path.read_text()) for path in settings.RUN_DIR.glob("monitor-*.pid")]
        assert len(pids) == 2
    finally:
        assert main(["stop"]) == 0
    assert "stopped: monitor-prometheus, monitor-pushgateway" in capsys.readouterr().out
    assert not (tmp_path / "run" / "monitor.env").exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
