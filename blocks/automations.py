"""The project's Prefect automations, created idempotently: `python -m blocks.automations` (or `make deploy`).

An automation is a rule the Prefect server runs: when an event matches its trigger, it takes its actions. One is
made here, `taxi-quarantine-high-report`: each `taxi.quarantine.high` event (a month's quarantined share above
`TAXI_QUARANTINE_ALERT_RATIO`, resource `taxi.month.<service>.<YYYY-MM>`) runs the `perf-report` deployment, so
the quarantine-by-reason table and the run's timings are there when someone looks at the alert. (A report after
every completed `taxi_etl` run is a deployment trigger in `prefect.yaml`: Prefect keeps that one with the
deployment.)

Rerunnable: an automation of the same name is updated when it differs, kept when it does not, and duplicates of
the name are deleted. Its action names `perf-report` by id, so that deployment must exist first
(`servers.deploy_all` deploys, then runs this); without it nothing is created, and it says why.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, RunDeployment
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound

PERF_REPORT_DEPLOYMENT = "perf-report/perf-report"  # <flow name>/<deployment name>
QUARANTINE_HIGH_EVENT = "taxi.quarantine.high"
QUARANTINE_AUTOMATION = "taxi-quarantine-high-report"


def quarantine_report_automation(perf_report_deployment_id: UUID) -> Automation:
    """Each `taxi.quarantine.high` event (one per month over the threshold) runs the perf report once."""
    return Automation(
        name=QUARANTINE_AUTOMATION,
        description=(
            "A month's quarantined share went over TAXI_QUARANTINE_ALERT_RATIO: run perf-report, whose "
            "quarantine table names the month and the reasons."
        ),
        trigger=EventTrigger(
            expect={QUARANTINE_HIGH_EVENT},
            match={"prefect.resource.id": "taxi.month.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            RunDeployment(
                source="selected", deployment_id=perf_report_deployment_id, parameters=None, job_variables=None
            )
        ],
    )


def _comparable(automation: AutomationCore) -> dict:
    return automation.model_dump(mode="json", include={"name", "description", "enabled", "trigger", "actions"})


def ensure_automation(wanted: Automation) -> str:
    """Create `wanted`, or bring the automation of its name in line with it; returns what was done."""
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(wanted.name)
        for duplicate in existing[1:]:
            client.delete_automation(duplicate.id)
        core = AutomationCore(**wanted.model_dump(exclude={"id"}))
        if not existing:
            client.create_automation(core)
            return "created"
        if _comparable(existing[0]) == _comparable(core):
            return "exists"
        client.update_automation(existing[0].id, core)
        return "updated"


def ensure_project_automations() -> dict[str, str]:
    """Every automation of the project, created or updated on the server at `PREFECT_API_URL`: {name: outcome}."""
    with get_client(sync_client=True) as client:
        try:
            perf_report = client.read_deployment_by_name(PERF_REPORT_DEPLOYMENT)
        except ObjectNotFound:
            return {QUARANTINE_AUTOMATION: f"skipped: deploy {PERF_REPORT_DEPLOYMENT} first (make deploy)"}
    return {QUARANTINE_AUTOMATION: ensure_automation(quarantine_report_automation(perf_report.id))}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m blocks.automations",
        description="Create (or correct) this project's Prefect automations on $PREFECT_API_URL.",
    ).parse_args(argv)
    outcomes = ensure_project_automations()
    for name, done in outcomes.items():
        print(f"automation {name}: {done}")
    return 1 if any(done.startswith("skipped") for done in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
