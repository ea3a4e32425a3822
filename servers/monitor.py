"""A Pushgateway and a Prometheus on free loopback ports (`python -m servers start monitor`, `make monitor`).

They run from Debian's `prometheus` and `prometheus-pushgateway` packages (`make monitor-deps` installs them). The
Prometheus configuration is monitoring/prometheus.yml (the one docker-compose.yml uses), rendered into
`.run/monitor/` with the real ports: the Pushgateway started here, and the Prefect server of `PREFECT_API_URL` (or of
`.run/prefect.env`) when there is one. Both processes are recorded under `.run/` like every other server here, so
`python -m servers stop` (`make stop`) stops them by process id.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from servers import free_port, http_ok, spawn, stop, wait_until
from tasks import settings

MONITORING_DIR = settings.PROJECT_ROOT / "monitoring"
PROMETHEUS_CONFIG = MONITORING_DIR / "prometheus.yml"
BINARIES = {"prometheus": "prometheus", "pushgateway": "prometheus-pushgateway"}
# quantile_over_time(...[90d] offset 1d) in the slow-step alert needs 91 days kept; Prometheus keeps 15 by default.
RETENTION = "400d"
INSTALL_HINT = "install Debian's prometheus and prometheus-pushgateway packages: make monitor-deps"


def missing_binaries() -> list[str]:
    """The monitoring programs not on PATH (empty when both are there)."""
    return [program for program in BINARIES.values() if shutil.which(program) is None]


def render_config(
    pushgateway: str, prefect_api_url: str | None, interval: str = "15s", source: Path = PROMETHEUS_CONFIG
) -> dict:
    """monitoring/prometheus.yml with local targets: the Pushgateway at `pushgateway` (host:port), the Prefect server
    behind `prefect_api_url` (its `/api/metrics`), or no Prefect job when there is none; rule files by absolute path.
    `interval` sets how often Prometheus scrapes and evaluates the rules (tests use 1s)."""
    config = yaml.safe_load(source.read_text())
    config["global"] = {**config.get("global", {}), "scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str((source.parent / rules).resolve()) for rules in config.get("rule_files", [])]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] == "pushgateway":
            job["static_configs"] = [{"targets": [pushgateway]}]
        elif job["job_name"] == "prefect-server":
            if not prefect_api_url:
                continue
            api = urlsplit(prefect_api_url)
            job["static_configs"] = [{"targets": [api.netloc]}]
            job["metrics_path"] = f"{api.path.rstrip('/')}/metrics"
        elif job["job_name"] == "prometheus":
            continue  # its own port is only known once it is chosen below; its own metrics teach nothing here
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


def prefect_api_url_here() -> str | None:
    """The Prefect server to scrape: `PREFECT_API_URL`, else the one `make server` recorded, else none."""
    if url := os.environ.get("PREFECT_API_URL"):
        return url
    env_file = settings.RUN_DIR / "prefect.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("export PREFECT_API_URL="):
                return line.split("=", 1)[1]
    return None


def start_monitor(prefect_api_url: str | None = None, interval: str = "15s") -> dict[str, str]:
    """Start a Pushgateway, then a Prometheus scraping it (and the Prefect server at `prefect_api_url`, by default
    the one of `prefect_api_url_here`); waits until both answer `/-/ready`.

    Returns the variables `.run/monitor.env` records: `TAXI_PUSHGATEWAY_URL` (where flow runs push) and
    `PROMETHEUS_URL`. Raises `FileNotFoundError` saying how to install the programs when one is missing.
    """
    if missing := missing_binaries():
        raise FileNotFoundError(f"{', '.join(missing)} not found: {INSTALL_HINT}")
    home = settings.RUN_DIR / "monitor"
    home.mkdir(parents=True, exist_ok=True)
    gateway_port = free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    try:
        spawn(
            "monitor-pushgateway",
            [
                shutil.which(BINARIES["pushgateway"]) or BINARIES["pushgateway"],
                f"--web.listen-address=127.0.0.1:{gateway_port}",
                f"--persistence.file={home / 'pushgateway.data'}",  # the last push of each group survives a restart
            ],
        )
        wait_until(lambda: http_ok(f"{gateway}/-/ready"), "Pushgateway", timeout=30)
        prometheus_port = free_port()
        prometheus = f"http://127.0.0.1:{prometheus_port}"
        config_file = home / "prometheus.yml"
        config = render_config(f"127.0.0.1:{gateway_port}", prefect_api_url or prefect_api_url_here(), interval)
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        spawn(
            "monitor-prometheus",
            [
                shutil.which(BINARIES["prometheus"]) or BINARIES["prometheus"],
                f"--config.file={config_file}",
                f"--storage.tsdb.path={home / 'prometheus-data'}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
        )
        wait_until(lambda: http_ok(f"{prometheus}/-/ready"), "Prometheus", timeout=60)
    except BaseException:
        stop(["monitor"])  # a half-started pair must not linger unrecorded
        raise
    return {"TAXI_PUSHGATEWAY_URL": gateway, "PROMETHEUS_URL": prometheus}
