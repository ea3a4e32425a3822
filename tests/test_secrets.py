"""No credential ever shows: not in logs, artifacts, results, run records, outputs, YAML or tracked files.

The S3 paths run with a recognisable fake secret key and session token (moto accepts any), then everything a
user or an operator can later read is searched for them: every log record in the process (botocore's debug
records included), the flow runs' logs, artifacts, parameters and states as the Prefect API holds them, the
objects written to S3, Prefect's local result storage, and the repository's tracked files. The same search runs
for credentials carried by a source URL: a presigned URL's query and `user:password@` (`tasks.redact.redact_url`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import s3fs
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.events.filters import EventFilter, EventOccurredFilter
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogHandler
from prefect_aws import AwsCredentials
from pydantic import SecretStr

from blocks.register import credentials_from_env
from flows.etl import main, taxi_etl
from tasks import settings
from tasks.pipeline.extract import SourceError, read_trip_file
from tasks.pipeline.validate import WrongMonthError
from tasks.pipeline.zones import ZoneTableError
from tasks.redact import MASK, redact_text, redact_url
from tasks.schema import SchemaError, ServiceMismatchError
from tests.polling import eventually
from tests.runs import settled_task_runs

SAMPLE = settings.SAMPLE_DIR / "green_tripdata_2025-01.parquet"
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|PRIVATE|CREDENTIAL|_KEY$", re.IGNORECASE)
# What a leaked AWS key looks like in a file: an access key id, or a private key block.
CREDENTIAL_PATTERNS = [re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")]


@pytest.fixture
def fake_secrets(monkeypatch) -> list[str]:
    """A fake secret key and session token, recognisable and unique to this test, in the environment."""
    run = uuid.uuid4().hex
    secrets = [f"taxi-FAKE-SECRET-{run}", f"taxi-FAKE-TOKEN-{run}"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "taxi-test-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secrets[0])
    monkeypatch.setenv("AWS_SESSION_TOKEN", secrets[1])
    s3fs.S3FileSystem.clear_instance_cache()
    yield secrets
    s3fs.S3FileSystem.clear_instance_cache()


def leaks(secrets: list[str], texts: dict[str, str]) -> list[str]:
    """Where any of `secrets` appears, as `where: secret` lines (empty when nothing leaked)."""
    return [f"{where}: {secret[:22]}..." for where, text in texts.items() for secret in secrets if secret in text]


def shown_by(credentials: AwsCredentials) -> dict[str, str]:
    """Everything that prints, dumps or reads back a saved credentials block (read without its secrets)."""
    name = f"taxi-secrets-{uuid.uuid4().hex[:8]}"
    credentials.save(name)
    with get_client(sync_client=True) as client:
        stored = client.read_block_document_by_name(name, block_type_slug="aws-credentials", include_secrets=False)
    return {
        "repr": repr(credentials),
        "str": str(credentials),
        "model_dump_json": credentials.model_dump_json(),
        "block document from the API": stored.model_dump_json(),
    }


@pytest.mark.usefixtures("prefect_server")
def test_the_aws_credentials_block_keeps_the_secret_key_hidden(fake_secrets, monkeypatch):
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    credentials = credentials_from_env()
    assert isinstance(credentials.aws_secret_access_key, SecretStr)
    assert credentials.aws_secret_access_key.get_secret_value() == fake_secrets[0]  # the secret is there...
    assert leaks(fake_secrets, shown_by(credentials)) == []  # ...and nothing shows it


@pytest.mark.usefixtures("prefect_server")
def test_temporary_credentials_stay_out_of_the_block(fake_secrets, s3_bucket, monkeypatch):
    """prefect-aws keeps the session token as plain text, so a block built from temporary keys stores none."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", fake_secrets[0])  # s3_bucket set the moto test keys
    monkeypatch.setenv("AWS_SESSION_TOKEN", fake_secrets[1])
    credentials = credentials_from_env()
    assert credentials.aws_session_token is None and credentials.aws_secret_access_key is None
    assert leaks(fake_secrets, shown_by(credentials)) == []
    buckets = credentials.get_s3_client().list_buckets()["Buckets"]  # boto3 still finds them in the environment
    assert s3_bucket in {bucket["Name"] for bucket in buckets}


@pytest.mark.flow
def test_s3_runs_reveal_no_secret(s3_bucket, moto_endpoint, fake_secrets, prefect_server, caplog, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", fake_secrets[0])  # s3_bucket set moto's test keys
    s3fs.S3FileSystem.clear_instance_cache()
    caplog.set_level(logging.DEBUG)  # every logger in the process, botocore's request signing included
    boto3.client("s3", endpoint_url=moto_endpoint).upload_file(str(SAMPLE), s3_bucket, f"raw/{SAMPLE.name}")
    source = f"s3://{s3_bucket}/raw/{{service}}_tripdata_{{month}}.parquet"
    seen: dict[str, str] = {}

    assert read_trip_file(f"s3://{s3_bucket}/raw/{SAMPLE.name}").num_rows > 0
    with pytest.raises(SourceError) as missing:
        read_trip_file(f"s3://{s3_bucket}/raw/absent.parquet")
    seen["extract error"] = str(missing.value)

    good = taxi_etl(
        service="green", months=["2025-01"], source=source, output=f"s3://{s3_bucket}/lake", return_state=True
    )
    bad = taxi_etl(
        service="green", months=["2024-12"], source=source, output=f"s3://{s3_bucket}/lake", return_state=True
    )
    assert good.is_completed() and bad.is_failed()
    seen["flow result"] = repr(good.result())

    APILogHandler().flush()  # blocks until every queued log record has reached the API
    run_ids = [good.state_details.flow_run_id, bad.state_details.flow_run_id]
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
        runs = [client.read_flow_run(run_id) for run_id in run_ids]
    task_runs = settled_task_runs(run_ids)
    assert any(f"s3://{s3_bucket}/raw/green_tripdata_2025-01.parquet" in log.message for log in logs)
    assert artifacts and any("| 2025-01 |" in (artifact.data or "") for artifact in artifacts)
    seen["flow run logs (API)"] = "\n".join(log.message for log in logs)
    seen["artifacts (API)"] = "\n".join(artifact.model_dump_json() for artifact in artifacts)
    seen["flow runs (API)"] = "\n".join(run.model_dump_json() for run in [*runs, *task_runs])
    seen["log records"] = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)

    bucket = boto3.client("s3", endpoint_url=moto_endpoint)
    keys = [item["Key"] for item in bucket.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(key.startswith("lake/trips/service=green/year=2025/month=1/") for key in keys)
    for key in keys:
        seen[f"s3://{s3_bucket}/{key}"] = bucket.get_object(Bucket=s3_bucket, Key=key)["Body"].read().decode("latin-1")
    results = Path(os.environ["PREFECT_LOCAL_STORAGE_PATH"])
    for path in results.rglob("*") if results.is_dir() else []:
        if path.is_file():
            seen[str(path)] = path.read_bytes().decode("latin-1")

    assert leaks(fake_secrets, seen) == []
    botocore_records = [record.getMessage() for record in caplog.records if record.name.startswith("botocore")]
    assert any(f"'X-Amz-Security-Token': b'{MASK}'" in message for message in botocore_records)  # sent, and masked


def test_botocore_debug_records_are_masked(caplog, monkeypatch):
    """The two forms botocore logs the token in (header dict, canonical request), and any credential value."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "taxi-FAKE-SECRET-0123456789")
    caplog.set_level(logging.DEBUG, logger="botocore")
    logging.getLogger("botocore.endpoint").debug("headers={'X-Amz-Security-Token': b'tok/EN+1=', 'X-Amz-Date': b'1'}")
    logging.getLogger("botocore.auth").debug("CanonicalRequest:\nhost:s3\nx-amz-security-token:tok/EN+1=\n")
    logging.getLogger("botocore.auth").debug("key %s in an argument", "taxi-FAKE-SECRET-0123456789")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        f"headers={{'X-Amz-Security-Token': b'{MASK}', 'X-Amz-Date': b'1'}}",
        f"CanonicalRequest:\nhost:s3\nx-amz-security-token:{MASK}\n",
        f"key {MASK} in an argument",
    ]


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=settings.PROJECT_ROOT, capture_output=True, check=True)
    return [settings.PROJECT_ROOT / name for name in listed.stdout.decode().split("\0") if name]


def test_tracked_files_hold_no_credentials():
    files = [path for path in tracked_files() if path.is_file() and path.suffix not in (".parquet", ".png")]
    assert len(files) > 20 and settings.PROJECT_ROOT / "prefect.yaml" in files
    found = [
        f"{path.relative_to(settings.PROJECT_ROOT)}: {match.group(0)[:8]}..."
        for path in files
        for pattern in CREDENTIAL_PATTERNS
        for match in pattern.finditer(path.read_text(errors="replace"))
    ]
    assert found == []


def environment_entries(document: object, where: str = "") -> list[tuple[str, str, object]]:
    """Every `env:` mapping entry anywhere in a YAML document, as `(where, name, value)`."""
    if isinstance(document, dict):
        found = []
        for key, value in document.items():
            if key == "env" and isinstance(value, dict):
                found += [(where, name, entry) for name, entry in value.items()]
            found += environment_entries(value, f"{where}/{key}")
        return found
    if isinstance(document, list):
        return [entry for i, item in enumerate(document) for entry in environment_entries(item, f"{where}[{i}]")]
    return []


@pytest.mark.parametrize("name", ["prefect.yaml", "deploy/prefect-docker.yaml", "deploy/prefect-kubernetes.yaml"])
def test_deployment_files_pass_no_secret_values(name):
    """Secrets reach a deployment from the worker's environment or a block, never as a value in the YAML."""
    entries = environment_entries(yaml.safe_load((settings.PROJECT_ROOT / name).read_text()))
    assert entries, f"{name} has no env: entries to check"
    secret_values = [(where, key) for where, key, value in entries if SECRET_NAME.search(key) and value]
    assert secret_values == []


ENV_READ_IN_PYTHON = re.compile(
    r"""(?:environ\.get\(|getenv\(|environ\[)\s*["']([A-Z][A-Z0-9_]+)["'](?!\s*\]\s*=[^=])"""
)
ENV_READ_IN_YAML = re.compile(r"\{\{\s*\$([A-Z][A-Z0-9_]+)\s*\}\}")
EXAMPLE_LINE = re.compile(r"^#?([A-Z][A-Z0-9_]+)=(.*)$")  # `NAME=value`, or `#NAME=value` for one left unset


def variables_read_by_the_project() -> set[str]:
    """Every environment variable the project's code (tests aside) reads by name, or its deployment YAML uses."""
    names: set[str] = set()
    for path in tracked_files():
        if path.suffix == ".py" and "tests" not in path.relative_to(settings.PROJECT_ROOT).parts:
            names |= set(ENV_READ_IN_PYTHON.findall(path.read_text()))
        elif path.suffix == ".yaml":
            names |= set(ENV_READ_IN_YAML.findall(path.read_text())) - {"PWD"}  # the shell's, set by `cd`
    return names


def test_env_example_documents_every_variable_without_secret_values():
    lines = (settings.PROJECT_ROOT / ".env.example").read_text().splitlines()
    documented = dict(match.groups() for line in lines if (match := EXAMPLE_LINE.match(line)))
    read = variables_read_by_the_project()
    assert {"TAXI_OUTPUT_ROOT", "AWS_SECRET_ACCESS_KEY", "PREFECT_API_URL", "TAXI_IMAGE"} <= read
    assert sorted(read - set(documented)) == []
    assert {name: value for name, value in documented.items() if SECRET_NAME.search(name) and value} == {}
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=settings.PROJECT_ROOT, check=False)
    assert ignored.returncode == 0, "a filled-in .env must never be committed: list it in .gitignore"


def presigned(url: str, run: str) -> str:
    """`url` signed the way S3 presigns a GET with temporary credentials, with fake recognisable values."""
    return (
        f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=taxiFAKEKEYID{run}%2F20250101%2Fus-east-1%2Fs3"
        f"%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        f"&X-Amz-Security-Token=taxi-FAKE-TOKEN-{run}&X-Amz-Signature=taxi-FAKE-SIGNATURE-{run}"
    )


def test_a_url_shows_without_its_credentials():
    url = presigned("https://bucket.s3.amazonaws.com/raw/green_tripdata_2025-01.parquet", "0123")
    assert redact_url(url) == (
        "https://bucket.s3.amazonaws.com/raw/green_tripdata_2025-01.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={MASK}&X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        f"&X-Amz-Security-Token={MASK}&X-Amz-Signature={MASK}"
    )
    assert redact_url("https://me:pa%40ss@host:8443/a.parquet#x") == f"https://{MASK}@host:8443/a.parquet#x"
    sigv2 = "https://h/a?AWSAccessKeyId=AK&Signature=s%2B&Expires=9&token=t&api_key=k&sig=z&v=1"
    assert redact_url(sigv2) == f"https://h/a?AWSAccessKeyId={MASK}&Signature={MASK}&Expires=9&token={MASK}" + (
        f"&api_key={MASK}&sig={MASK}&v=1"
    )
    for kept in (
        "/data/green_tripdata_2025-01.parquet",
        "s3://bucket/raw/{service}_{month}.parquet",
        "https://h/a?v=1",
    ):
        assert redact_url(kept) == kept
    assert redact_text(f"SourceError: http://u:p@h/x.parquet: HTTP 404 (`{sigv2}`)") == (
        f"SourceError: http://{MASK}@h/x.parquet: HTTP 404 (`{redact_url(sigv2)}`)"
    )


def test_errors_that_name_a_source_name_it_without_its_credentials():
    """Prefect stores `str(error)` as a failed month's state message and sends it in the task run's event."""
    url = "https://me:hunter2@host/green_tripdata_2025-01.parquet?X-Amz-Signature=abc"
    for error_type in (SourceError, SchemaError, ServiceMismatchError, WrongMonthError, ZoneTableError):
        shown = str(error_type(f"{url}: cannot be used"))
        assert "hunter2" not in shown and "abc" not in shown and "host/green_tripdata_2025-01.parquet" in shown


def shown_by_the_api(since: datetime, expected_events: set[str]) -> dict[str, str]:
    """Everything the Prefect API holds about the flow runs started since `since`: their parameters, every state
    of them and of their task runs, their logs, artifacts, and the events that occurred since (once `expected_events`
    are among them: the server stores events in batches)."""
    APILogHandler().flush()
    EventsWorker.drain_all()
    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(after_=since))
        )
        run_ids = [run.id for run in flow_runs]
    task_runs = settled_task_runs(run_ids)
    with get_client(sync_client=True) as client:
        states = [state for run in flow_runs for state in client.read_flow_run_states(run.id)]
        states += [state for run in task_runs for state in client.read_task_run_states(run.id)]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))

    def events() -> list:
        with get_client(sync_client=True) as client:
            page = client.read_events(filter=EventFilter(occurred=EventOccurredFilter(since=since)), limit=50)
            found = list(page.events)
            while page.next_page:
                page = client.read_events_page(page.next_page)
                found += page.events
        return found if expected_events <= {event.event for event in found} else []

    return {
        "flow runs and task runs (API)": "\n".join(run.model_dump_json() for run in [*flow_runs, *task_runs]),
        "states (API)": "\n".join(state.model_dump_json() for state in states),
        "logs (API)": "\n".join(log.message for log in logs),
        "artifacts (API)": "\n".join(artifact.model_dump_json() for artifact in artifacts),
        "events (API)": "\n".join(event.model_dump_json() for event in eventually(events, str(expected_events))),
    }


def log_records(caplog) -> str:
    """Every record as a handler would print it: message, and traceback (`exc_text` once a formatter made it)."""
    formatter = logging.Formatter()
    return "\n".join(
        f"{r.getMessage()} {r.exc_text or (formatter.formatException(r.exc_info) if r.exc_info else '')}"
        for r in caplog.records
    )


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_runs_from_urls_with_credentials_reveal_none(http_root, tmp_path, caplog, capfd, monkeypatch):
    """A presigned URL and `user:password@` URLs, read by real runs from a loopback http server, through the
    command line (`--source`), and the `TAXI_SOURCE_URL` setting; one month found, one missing (a failed state)."""
    folder, base = http_root
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    run = uuid.uuid4().hex
    secrets = [f"taxiFAKEKEYID{run}", f"taxi-FAKE-TOKEN-{run}", f"taxi-FAKE-SIGNATURE-{run}"]
    secrets += [f"taxiuser{run}", f"taxi-FAKE-PASSWORD-{run}"]
    with_password = base.replace("://", f"://taxiuser{run}:taxi-FAKE-PASSWORD-{run}@")
    caplog.set_level(logging.DEBUG)
    since = datetime.now(UTC)

    assert main(["--source", presigned(f"{base}/{SAMPLE.name}", run), "--output", str(tmp_path / "a")]) == 0
    missing = f"{with_password}/absent/{{service}}_tripdata_{{month}}.parquet"
    assert main(["--source", missing, "--service", "green", "--month", "2025-01", "--output", str(tmp_path)]) == 1
    monkeypatch.setenv("TAXI_SOURCE_URL", f"{with_password}/{SAMPLE.name}")
    by_setting = taxi_etl(service="green", output=str(tmp_path / "b"), return_state=True)
    assert by_setting.is_completed()

    seen = shown_by_the_api(since, {"taxi.month.loaded", "taxi.month.failed"})
    seen["flow result"] = repr(by_setting.result())
    seen["log records"] = log_records(caplog)
    console = capfd.readouterr()
    seen["console"] = console.out + console.err
    assert f"{base}/{SAMPLE.name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={MASK}" in seen["logs (API)"]
    assert f"http://{MASK}@127.0.0.1" in seen["states (API)"]  # the failed month's message names its source
    assert "HTTP 404" in seen["console"] and "| 2025-01 |" in seen["artifacts (API)"]
    assert leaks(secrets, seen) == []
