"""Every setting of the pipeline in one place: paths, URLs, environment variables and validation limits.

Values that a deployment may change are read from the environment when they are used (not at import), so a
test or a worker can set them per run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect_aws import AwsCredentials

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = PROJECT_ROOT / "data"
SAMPLE_DIR = DATA_DIR / "sample"
CACHE_DIR = DATA_DIR / "cache"

SERVICES = ("yellow", "green")

# The committed synthetic sample: `python -m data.generate --sample` rewrites it.
SAMPLE_MONTHS = ("2025-01", "2025-02")
SAMPLE_ROWS = {"yellow": 50_000, "green": 10_000}
SAMPLE_SEED = 2025
SAMPLE_SOURCE = str(SAMPLE_DIR / "{service}_tripdata_{month}.parquet")

# Official TLC locations. A source template may use {service}, {month} (YYYY-MM), {year} and {mm}.
TLC_TRIP_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data/{service}_tripdata_{month}.parquet"
TLC_ZONES_URL = "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zone_lookup.csv"
SHIPPED_ZONES = DATA_DIR / "taxi_zone_lookup.csv"  # TLC's table, copied from TLC_ZONES_URL: the default
ZONES_CACHE = CACHE_DIR / "taxi_zone_lookup.csv"  # where `--zones tlc` keeps its download
ZONE_COUNT_RANGE = (255, 275)  # a zone table outside this many rows is not TLC's (265 today)
DOWNLOAD_TIMEOUT_SECONDS = 10
PUBLICATION_DELAY_MONTHS = 2  # TLC publishes a month's file about two months after it ends
# `latest` is checked (an HTTP HEAD on the month's file): if the expected month is not out yet, step back a month
# at a time, at most this many months, before failing the run.
LATEST_LOOKBACK_MONTHS = 3
PUBLICATION_CHECK_TIMEOUT_SECONDS = 10

# Retries of the network steps (extract, load), for transient faults only (tasks/retries.py): waits of about
# 10, 20 and 40 s (exponential backoff), each drawn at random up to RETRY_JITTER_FACTOR longer or shorter so
# that runs failing together do not all come back at the same instant. At most about 105 s of waiting in all.
RETRY_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 10.0
RETRY_JITTER_FACTOR = 0.5
# One S3 call through s3fs: botocore's own attempts and timeouts, kept small so that a dead endpoint fails a try
# in seconds and Prefect's backoff above does the waiting (botocore's defaults: benchmarks/README.md).
S3_CONNECT_TIMEOUT_SECONDS = 5
S3_READ_TIMEOUT_SECONDS = 60
S3_CLIENT_ATTEMPTS = 2

# Validation limits (tasks/pipeline/rules.py documents each rule that uses them).
MAX_TRIP_HOURS = 24
MAX_TRIP_MILES = 250
MAX_AVG_SPEED_MPH = 100
# A file is refused for a month when more than this share of its pickups fall in other months
# (tasks/pipeline/validate.py).
MAX_SHARE_OUTSIDE_MONTH = 0.5

# Output files: parquet, zstd-compressed, in Delta tables partitioned by service, year and month.
PARQUET_COMPRESSION = "zstd"

# One writer per month (tasks/lake/write_lock.py): how long a second writer waits for the month's slot, and how long a
# killed writer's slot stays taken before the server frees it (a live writer renews its lease as it goes).
WRITE_LOCK_TIMEOUT_SECONDS = 300
WRITE_LOCK_LEASE_SECONDS = 60


# Synthetic data never lands in the lake: runs on the committed sample write here unless told otherwise.
SAMPLE_OUTPUT_ROOT = str(PROJECT_ROOT / "output" / "sample")


def output_root() -> str:
    """Where `taxi_etl` writes: `TAXI_OUTPUT_ROOT` (a folder or an `s3://` prefix), else `./output`."""
    return os.environ.get("TAXI_OUTPUT_ROOT", str(PROJECT_ROOT / "output"))


def source_url() -> str | None:
    """`taxi_etl`'s source when none is given: `TAXI_SOURCE_URL` (a path, URL or template), else None (TLC's files).

    The place for a URL that carries credentials (a presigned S3 URL, `https://user:password@...`): a flow run's
    parameters are stored and shown as given, the environment is not. A deployment's worker can fill it from a
    Secret block in the work pool's job variables (`env: {TAXI_SOURCE_URL: "{{ prefect.blocks.secret.NAME }}"}`),
    which the worker resolves when it starts the run.
    """
    return os.environ.get("TAXI_SOURCE_URL") or None


def staging_root() -> str:
    """Where a month is staged on local disk (`tasks/pipeline/staging.py`): `TAXI_STAGING_DIR`, else the system's
    temporary
    folder. Each month running at once stages its source (if not a local parquet file) and its output files there."""
    return os.environ.get("TAXI_STAGING_DIR") or tempfile.gettempdir()


def lesson_output_root(lesson: str) -> str:
    """Where a lesson writes by default: `TAXI_LESSONS_ROOT/<lesson>`, else `./output/lessons/<lesson>`.

    Never under `TAXI_OUTPUT_ROOT`: lessons process synthetic or sample data, which must not mix with the lake.
    """
    return f"{os.environ.get('TAXI_LESSONS_ROOT', str(PROJECT_ROOT / 'output' / 'lessons')).rstrip('/')}/{lesson}"


def s3_endpoint_url() -> str | None:
    """A custom S3 endpoint (moto, MinIO, ...) from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`; None for AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def aws_credentials() -> AwsCredentials:
    """The one place S3 settings come from: a prefect-aws `AwsCredentials` built from the environment.

    The lake's reads and writes (the option functions below, for fsspec and polars), the task results and their
    listings (the `S3Bucket` block `python -m blocks.register` saves from this same object) all derive from it, so
    an endpoint or a key set here reaches every S3 path or none. Keys: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`;
    temporary ones (with `AWS_SESSION_TOKEN`) are left out, since prefect-aws would keep the token as plain text
    in a saved block, and every client then finds them, as boto3 does, in the environment.
    """
    from prefect_aws import AwsCredentials  # imports Prefect: only S3 paths pay for it (tasks/lake stays light)
    from prefect_aws.client_parameters import AwsClientParameters
    from pydantic import SecretStr

    temporary = bool(os.environ.get("AWS_SESSION_TOKEN"))
    secret = None if temporary else os.environ.get("AWS_SECRET_ACCESS_KEY")
    return AwsCredentials(
        aws_access_key_id=None if temporary else os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=SecretStr(secret) if secret else None,
        region_name=aws_region(),
        aws_client_parameters=AwsClientParameters(endpoint_url=s3_endpoint_url()),
    )


def _endpoint_and_keys(uri: str) -> tuple[str | None, tuple[str, str] | None]:
    """For an `s3://` URI, the endpoint and the (key id, secret) that `aws_credentials()` holds; else nothing."""
    if not uri.startswith("s3://"):
        return None, None
    credentials = aws_credentials()
    key_id, secret = credentials.aws_access_key_id, credentials.aws_secret_access_key
    return credentials.aws_client_parameters.endpoint_url, (
        key_id,
        secret.get_secret_value(),
    ) if key_id and secret else None


def storage_options(uri: str) -> dict:
    """fsspec (s3fs) options for `uri`, from `aws_credentials()`: its endpoint and keys for `s3://` URIs (none it
    lacks, so the usual AWS lookup still finds them), nothing for local paths or HTTP."""
    endpoint, keys = _endpoint_and_keys(uri)
    options: dict = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    if keys:
        options["key"], options["secret"] = keys
    return options


def fsspec_options(uri: str) -> dict:
    """`storage_options(uri)` plus, for `s3://`, s3fs's client timeouts and attempts (`S3_*` settings above).

    For fsspec/s3fs only: polars and pyarrow take `storage_options` in their own format.
    """
    options = storage_options(uri)
    if uri.startswith("s3://"):
        options["config_kwargs"] = {
            "connect_timeout": S3_CONNECT_TIMEOUT_SECONDS,
            "read_timeout": S3_READ_TIMEOUT_SECONDS,
            "retries": {"total_max_attempts": S3_CLIENT_ATTEMPTS, "mode": "standard"},
        }
    return options


def polars_storage_options(uri: str) -> dict:
    """The same endpoint and keys for polars, which reads object_store keys (`aws_endpoint_url`), not fsspec's."""
    endpoint, keys = _endpoint_and_keys(uri)
    options = (
        {"aws_endpoint_url": endpoint, "aws_allow_http": str(endpoint.startswith("http://")).lower()}
        if endpoint
        else {}
    )
    if keys:
        options["aws_access_key_id"], options["aws_secret_access_key"] = keys
    return options


def delta_storage_options(uri: str) -> dict[str, str] | None:
    """deltalake's (object_store) options for a lake table at `uri`: the endpoint and keys of `aws_credentials()`,
    and `conditional_put: etag`, so that two writers committing the same table version on S3 cannot both succeed
    (the second PUT of a log entry fails, and Delta's optimistic concurrency sees a conflict). None for a folder."""
    if not uri.startswith("s3://"):
        return None
    endpoint, keys = _endpoint_and_keys(uri)
    options = {"AWS_REGION": aws_region(), "conditional_put": "etag"}
    # object_store's own retries (up to 180 s of them by default) bounded by time, as s3fs's are above, so that a
    # dead endpoint fails a try in seconds and Prefect's backoff does the waiting. (No `max_retries`: polars, which
    # takes these options in `scan_delta`, refuses it as a string.)
    options |= {"connect_timeout": f"{S3_CONNECT_TIMEOUT_SECONDS}s", "timeout": f"{S3_READ_TIMEOUT_SECONDS}s"}
    options["retry_timeout"] = f"{S3_CONNECT_TIMEOUT_SECONDS * S3_CLIENT_ATTEMPTS}s"
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        options["AWS_ALLOW_HTTP"] = str(endpoint.startswith("http://")).lower()
    if keys:
        options["AWS_ACCESS_KEY_ID"], options["AWS_SECRET_ACCESS_KEY"] = keys
    return options


# The lake (tasks/lake/): Delta tables. A writer whose commit loses to a concurrent one (Delta's optimistic
# concurrency) writes again, at most this many times in all, then fails naming the month.
LAKE_COMMIT_ATTEMPTS = 3
# Delta keeps a table's log this long: the log is what pairs a month's trips with its quarantine run and what
# rolls a month back, so it is kept far longer than the data files `vacuum` removes.
LAKE_LOG_RETENTION = "interval 3650 days"
# `flows/maintenance.py`: files no version newer than this needs are deleted by `vacuum`.
VACUUM_RETENTION_HOURS = 7 * 24
# A month whose quarantined rows exceed this share of its rows is refused before commit (the previous month
# stays) unless the run says `allow_high_quarantine=True`: a file whose every row breaks a rule is a mistake.
MAX_QUARANTINE_SHARE = 0.5


def vacuum_retention_hours() -> int:
    """`TAXI_VACUUM_RETENTION_HOURS`, else `VACUUM_RETENTION_HOURS` (a week)."""
    return int(os.environ.get("TAXI_VACUUM_RETENTION_HOURS") or VACUUM_RETENTION_HOURS)


def max_quarantine_share() -> float:
    """`TAXI_MAX_QUARANTINE_SHARE`, else `MAX_QUARANTINE_SHARE`."""
    return float(os.environ.get("TAXI_MAX_QUARANTINE_SHARE") or MAX_QUARANTINE_SHARE)


# Prefect blocks for S3 result storage (`python -m blocks.register`).
S3_BUCKET_BLOCK = "taxi-results"
AWS_CREDENTIALS_BLOCK = "taxi-aws"
RUN_DIR = PROJECT_ROOT / ".run"  # process ids and URLs of the local servers the Makefile starts


def s3_bucket_name() -> str:
    """The bucket for task results: `TAXI_S3_BUCKET`, default `taxi-results`."""
    return os.environ.get("TAXI_S3_BUCKET", "taxi-results")


def aws_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def dask_performance_report_path() -> str | None:
    """Where a Dask run of `taxi_etl` writes Dask's performance report (HTML, replaced by each run):
    `TAXI_DASK_PERFORMANCE_REPORT`, default `reports/dask/performance-report.html`; set it empty for none."""
    path = os.environ.get(
        "TAXI_DASK_PERFORMANCE_REPORT", str(PROJECT_ROOT / "reports" / "dask" / "performance-report.html")
    )
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path or None


def month_threads() -> int:
    """How many months `taxi_etl`'s thread runner processes at once: `TAXI_MONTH_THREADS`, default 2 (each holds a
    month's batches in memory). Read when `flows.etl` is imported: the runner is part of the flow."""
    return max(1, int(os.environ.get("TAXI_MONTH_THREADS") or "2"))


def dask_address() -> str | None:
    """An existing Dask scheduler (`tcp://HOST:PORT`) for `taxi_etl`'s months: `TAXI_DASK_ADDRESS`, which `make
    dask` writes to `.run/dask.env`; None (empty) for none."""
    return os.environ.get("TAXI_DASK_ADDRESS") or None


# The daily pickup-zone mart (`tasks/mart.py`, flow `taxi-mart` in `flows/mart.py`), written to
# `<lake>/marts/<MART_NAME>.parquet`, and its chart, regenerated by `python -m flows.mart --chart`.
MART_NAME = "daily_pickup_zone"
MART_CHART = PROJECT_ROOT / "reports" / "mart" / "daily-trips-by-borough.png"
MART_DASK_WORKERS = 2  # a LocalCluster's workers; the mart task holds one while the dataframe runs on the others


# Monitoring (tasks/observe/metrics.py, tasks/observe/metrics_publish.py, tasks/observe/prometheus.py).
# A month whose quarantined rows exceed this share of its rows in emits `taxi.quarantine.high`.
QUARANTINE_ALERT_RATIO = 0.05


def quarantine_alert_ratio() -> float:
    """The quarantine share above which a month emits `taxi.quarantine.high`: `TAXI_QUARANTINE_ALERT_RATIO`, else
    `QUARANTINE_ALERT_RATIO`."""
    return float(os.environ.get("TAXI_QUARANTINE_ALERT_RATIO") or QUARANTINE_ALERT_RATIO)


def pushgateway_url() -> str | None:
    """A Prometheus Pushgateway (`http://host:port`) that each `taxi_etl` run pushes its metrics to, or None."""
    return os.environ.get("TAXI_PUSHGATEWAY_URL") or None


def task_metrics_enabled() -> bool:
    """Whether `@metered` and `@monitored` attach their hooks: `TAXI_TASK_METRICS`, on unless `0`. Read when the
    flows are imported (the hooks are part of the task and flow objects), so it holds for a whole process."""
    return os.environ.get("TAXI_TASK_METRICS", "1") != "0"
