"""Faults a scheduled run meets: which failures are retried (tasks/retries.py), and what a run does when S3 is down.

The classification is tested on exceptions raised by the real clients wherever a local server can produce them
(moto with IAM checks on for rejected credentials, a closed port for a dead endpoint, a local HTTP server that
answers any status), and on botocore/aiohttp exception objects built as those libraries build them otherwise.
"""

from __future__ import annotations

import errno
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import boto3
import botocore.exceptions
import pytest
import s3fs
from moto.core.authorization import enable_iam_authentication

import flows.etl
from flows.etl import taxi_etl
from flows.runners import retry_month_if_transient
from servers.local_s3 import start_moto
from tasks import settings
from tasks.pipeline.extract import SourceError, read_trip_file
from tasks.retries import is_transient, network_retry_options, retry_delays, retry_if_transient
from tests.runs import task_runs_of

SAMPLE = settings.SAMPLE_DIR / "green_tripdata_2025-01.parquet"
TEMPLATE = "{service}_tripdata_{month}.parquet"


def raised_by(call: Callable[[], object]) -> BaseException:
    """The exception `call` raises (the test fails if it raises nothing)."""
    with pytest.raises(BaseException) as caught:
        call()
    return caught.value


def free_port() -> int:
    """A loopback port nothing listens on (the kernel just handed it out and it was closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    """A `ClientError` as botocore raises it from a parsed S3 error response."""
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "GetObject")


# --- the classification -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rejected_credentials(moto_endpoint) -> dict[str, BaseException]:
    """The errors moto's S3 returns, with IAM checks on, for an unknown key, a wrong secret and no permission."""

    def client(service: str, key_id: str = "testing", secret: str = "testing"):
        return boto3.client(
            service,
            endpoint_url=moto_endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    user = f"taxi-reader-{free_port()}"
    client("iam").create_user(UserName=user)
    key = client("iam").create_access_key(UserName=user)["AccessKey"]
    client("s3").create_bucket(Bucket="taxi-iam-checks")

    def read_with(key_id: str, secret: str) -> Callable[[], object]:
        s3 = client("s3", key_id, secret)
        return lambda: s3.get_object(Bucket="taxi-iam-checks", Key="any.parquet")

    with enable_iam_authentication():
        return {
            "InvalidAccessKeyId": raised_by(read_with("TAXIUNKNOWNKEYID", "whatever")),
            "SignatureDoesNotMatch": raised_by(read_with(key["AccessKeyId"], "not-the-secret")),
            "AccessDenied": raised_by(read_with(key["AccessKeyId"], key["SecretAccessKey"])),
        }


@pytest.mark.parametrize("code", ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"])
def test_rejected_credentials_are_never_retried(rejected_credentials, code):
    error = rejected_credentials[code]
    assert isinstance(error, botocore.exceptions.ClientError) and error.response["Error"]["Code"] == code
    assert not is_transient(error)
    assert not is_transient(s3fs.errors.translate_boto_error(error))  # as s3fs raises it: a PermissionError


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("SlowDown", 503, True),
        ("ServiceUnavailable", 503, True),
        ("InternalError", 500, True),
        ("ThrottlingException", 400, True),
        ("RequestTimeout", 400, True),
        ("503", 503, True),
        ("NoSuchKey", 404, False),
        ("NoSuchBucket", 404, False),
        ("ExpiredToken", 400, False),
    ],
)
def test_s3_error_codes(code, status, transient):
    error = client_error(code, status)
    assert is_transient(error) is transient
    assert is_transient(s3fs.errors.translate_boto_error(error)) is transient  # EBUSY, EREMOTEIO, FileNotFound...


def test_a_missing_s3_key_is_permanent(s3_bucket):
    missing = f"s3://{s3_bucket}/raw/absent.parquet"
    error = raised_by(lambda: read_trip_file(missing))
    assert isinstance(error, SourceError) and not is_transient(error)


def test_a_dead_endpoint_is_transient(monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3fs.S3FileSystem.clear_instance_cache()
    s3_error = raised_by(lambda: read_trip_file("s3://taxi-nowhere/green_tripdata_2025-01.parquet"))
    http_error = raised_by(lambda: read_trip_file(f"{dead}/green_tripdata_2025-01.parquet"))
    s3fs.S3FileSystem.clear_instance_cache()
    assert isinstance(s3_error.__cause__, botocore.exceptions.EndpointConnectionError)
    assert isinstance(http_error.__cause__, aiohttp.ClientConnectorError)
    assert is_transient(s3_error) and is_transient(http_error)
    assert "cannot be fetched" in str(s3_error) and "Could not connect" in str(s3_error)


class StatusHandler(BaseHTTPRequestHandler):
    """Answers `/<status>/<name>` with that HTTP status (and no body)."""

    def do_GET(self):
        self.send_response(int(self.path.split("/")[1]))
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def status_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StatusHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "transient"), [(500, True), (502, True), (503, True), (429, True), (404, False), (403, False)]
)
def test_http_statuses_through_extract(status_server, status, transient):
    error = raised_by(lambda: read_trip_file(f"{status_server}/{status}/green_tripdata_2025-01.parquet"))
    assert isinstance(error, SourceError)
    assert is_transient(error) is transient


def _key_error_while_handling_a_timeout():
    try:
        raise TimeoutError("read timed out")
    except TimeoutError:
        return {}["pickup"]  # a bug in the handler: the KeyError is what failed


@pytest.mark.parametrize(
    ("make_error", "transient"),
    [
        (lambda: TimeoutError("timed out"), True),
        (lambda: ConnectionResetError(errno.ECONNRESET, "reset by peer"), True),
        (lambda: OSError(errno.ETIMEDOUT, "timed out"), True),
        (lambda: aiohttp.ServerDisconnectedError(), True),
        (lambda: aiohttp.ClientPayloadError("body cut short"), True),
        (lambda: botocore.exceptions.ReadTimeoutError(endpoint_url="http://s3"), True),
        (lambda: botocore.exceptions.ConnectTimeoutError(endpoint_url="http://s3"), True),
        (lambda: botocore.exceptions.NoCredentialsError(), False),
        (lambda: FileNotFoundError(errno.ENOENT, "no such file"), False),
        (lambda: PermissionError(errno.EACCES, "denied"), False),
        (lambda: OSError("something translated, with no cause"), False),
        (lambda: TypeError("unsupported operand"), False),
        (lambda: KeyError("pickup"), False),
        (lambda: ZeroDivisionError(), False),
        (lambda: SourceError("trips.parquet: corrupt or truncated parquet file"), False),
        (lambda: raised_by(_key_error_while_handling_a_timeout), False),
    ],
    ids=lambda value: value if isinstance(value, bool) else "",
)
def test_other_errors(make_error, transient):
    assert is_transient(make_error()) is transient


def test_the_month_task_retries_with_the_settings_backoff_and_the_transient_classification():
    month = network_retry_options()  # what taxi_etl's month task runs (extract to load) are given
    assert month["retry_condition_fn"] is retry_if_transient
    assert month["retries"] == settings.RETRY_ATTEMPTS > 0
    assert month["retry_jitter_factor"] == settings.RETRY_JITTER_FACTOR > 0
    assert month["retry_delay_seconds"] == retry_delays(settings.RETRY_BACKOFF_SECONDS, settings.RETRY_ATTEMPTS)


# --- end to end: the taxi_etl flow against S3 that is down ------------------------------------------------------

FAST_BACKOFF_SECONDS = 0.2


@pytest.fixture
def fast_retries(monkeypatch):
    """The production retry policy with waits of 0.2, 0.4, 0.8 s instead of 10, 20, 40 s, for taxi_etl's month task
    runs (their options are built from the settings when a run submits its months)."""
    monkeypatch.setattr(settings, "RETRY_BACKOFF_SECONDS", FAST_BACKOFF_SECONDS)


def put_sample(bucket: str, moto_endpoint: str) -> str:
    """Upload the green January sample; returns the source template for it."""
    boto3.client("s3", endpoint_url=moto_endpoint).upload_file(str(SAMPLE), bucket, f"raw/{SAMPLE.name}")
    return f"s3://{bucket}/raw/{TEMPLATE}"


def point_s3_at(endpoint: str, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    s3fs.S3FileSystem.clear_instance_cache()


def outage_after_the_output_check(port: int, monkeypatch) -> None:
    """S3 on `port` is up while the run checks its output root, then down: the outage its months meet.

    A run checks its output root before reading any month (`tasks/pipeline/output_check.py`, tested in
    tests/test_output_check.py) and fails at once when S3 is down then; these tests are about an outage that
    begins after that check."""
    check_output_root = flows.etl.check_output_root

    def check_then_go_down(root: str) -> None:
        server = start_moto(port)[0]
        try:
            check_output_root(root)
        finally:
            server.stop()
            s3fs.S3FileSystem.clear_instance_cache()

    monkeypatch.setattr(flows.etl, "check_output_root", check_then_go_down)


def attempts_of(state) -> int:
    """How many times the run's month task ran (1 = no retry), read back from the Prefect API."""
    (run,) = [run for run in task_runs_of(state) if re.fullmatch(r"month-(yellow|green)-\d{4}-\d{2}", run.name)]
    return run.run_count


PUBLISHED_MONTH = [
    "lake/quarantine/_delta_log/00000000000000000000.json",
    "lake/quarantine/service=green/year=2025/month=1/part-<id>.zstd.parquet",
    "lake/trips/_delta_log/00000000000000000000.json",
    "lake/trips/service=green/year=2025/month=1/part-<id>.zstd.parquet",
]


def listed(bucket: str, moto_endpoint: str, prefix: str) -> list[str]:
    """The month's objects under `prefix`: each table's one commit and one data file (a leftover of a failed
    attempt, a second commit, would show here)."""
    response = boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(re.sub(r"part-[0-9a-f]{16}", "part-<id>", item["Key"]) for item in response.get("Contents", []))


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server", "fast_retries")
def test_the_run_completes_when_s3_comes_back(s3_bucket, moto_endpoint, monkeypatch):
    """S3 is down (nothing listens on its port) until the first failed read has been judged; then it is up."""
    source = put_sample(s3_bucket, moto_endpoint)
    port = free_port()
    point_s3_at(f"http://127.0.0.1:{port}", monkeypatch)
    outage_after_the_output_check(port, monkeypatch)
    revived = []

    def bring_s3_back_then_decide(task, task_run, state):
        if not revived:
            revived.append(start_moto(port)[0])  # same in-process moto backend: the bucket is there
        return retry_month_if_transient(task, task_run, state)

    monkeypatch.setattr(flows.etl, "retry_month_if_transient", bring_s3_back_then_decide)
    try:
        state = taxi_etl(
            service="green", months=["2025-01"], source=source, output=f"s3://{s3_bucket}/lake", return_state=True
        )
    finally:
        for server in revived:
            server.stop()
    assert state.is_completed(), state.message
    assert revived and attempts_of(state) == 2
    assert listed(s3_bucket, moto_endpoint, "lake/") == PUBLISHED_MONTH


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server", "fast_retries")
def test_a_load_that_meets_s3_down_is_retried_until_it_is_back(s3_bucket, moto_endpoint, monkeypatch):
    port = free_port()
    point_s3_at(f"http://127.0.0.1:{port}", monkeypatch)
    outage_after_the_output_check(port, monkeypatch)
    revived = []

    def bring_s3_back_then_decide(task, task_run, state):
        if not revived:
            revived.append(start_moto(port)[0])
        return retry_month_if_transient(task, task_run, state)

    monkeypatch.setattr(flows.etl, "retry_month_if_transient", bring_s3_back_then_decide)
    try:
        state = taxi_etl(
            service="green", months=["2025-01"], source=str(SAMPLE), output=f"s3://{s3_bucket}/lake", return_state=True
        )
    finally:
        for server in revived:
            server.stop()
    assert state.is_completed(), state.message
    assert revived and attempts_of(state) == 2
    assert listed(s3_bucket, moto_endpoint, "lake/") == PUBLISHED_MONTH  # no staged leftovers


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server", "fast_retries")
def test_s3_down_for_good_fails_clearly_after_every_retry_and_writes_nothing(s3_bucket, tmp_path, monkeypatch):
    point_s3_at(f"http://127.0.0.1:{free_port()}", monkeypatch)
    source = f"s3://{s3_bucket}/raw/{TEMPLATE}"
    state = taxi_etl(
        service="green", months=["2025-01"], source=source, output=str(tmp_path / "out"), return_state=True
    )
    assert state.is_failed()
    assert f"s3://{s3_bucket}/raw/green_tripdata_2025-01.parquet: cannot be fetched" in state.message
    assert "Could not connect to the endpoint URL" in state.message
    assert attempts_of(state) == 1 + settings.RETRY_ATTEMPTS
    assert not (tmp_path / "out").exists()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server", "fast_retries")
def test_rejected_credentials_fail_the_run_on_the_first_attempt(s3_bucket, moto_endpoint, tmp_path, monkeypatch):
    source = put_sample(s3_bucket, moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "TAXIUNKNOWNKEYID")
    s3fs.S3FileSystem.clear_instance_cache()
    with enable_iam_authentication():
        state = taxi_etl(
            service="green", months=["2025-01"], source=source, output=str(tmp_path / "out"), return_state=True
        )
    assert state.is_failed()
    assert "permission denied" in state.message
    assert attempts_of(state) == 1
    assert not (tmp_path / "out").exists()


def test_a_write_lock_timeout_is_not_retried():
    """Waiting for a month's write slot again would cost another full timeout for a slot a killed writer may hold."""
    from tasks.lake.write_lock import WriteLockTimeout

    assert not is_transient(WriteLockTimeout("waited 300 s for the concurrency limit taxi-write-yellow-2025-01"))


def test_an_endpoint_down_for_good_fails_the_run_within_the_documented_bound():
    """The README promises a bound; raising a retry setting past it must come with a new promise."""
    from tasks.retries import worst_case_failure_seconds

    assert worst_case_failure_seconds() <= 4 * 60  # README: "within 4 minutes"
    assert worst_case_failure_seconds(server_accepts_connections=True) <= 12 * 60  # README: "12 minutes"
