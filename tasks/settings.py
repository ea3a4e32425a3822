"""Every setting of the pipeline in one place: paths, URLs, environment variables and validation limits.

Values that a deployment may change are read from the environment when they are used (not at import), so a
test or a worker can set them per run.
"""

from __future__ import annotations

import os
from pathlib import Path

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
ZONES_CACHE = CACHE_DIR / "taxi_zone_lookup.csv"
DOWNLOAD_TIMEOUT_SECONDS = 10
PUBLICATION_DELAY_MONTHS = 2  # TLC publishes a month's file about two months after it ends

# Validation limits (tasks/rules.py documents each rule that uses them).
MAX_TRIP_HOURS = 24
MAX_TRIP_MILES = 250
MAX_AVG_SPEED_MPH = 100

# Output files: parquet, zstd-compressed, one file per month partition.
PARQUET_COMPRESSION = "zstd"

# One writer per month (tasks/write_lock.py): how long a second writer waits for the month's slot, and how long a
# killed writer's slot stays taken before the server frees it (a live writer renews its lease as it goes).
WRITE_LOCK_TIMEOUT_SECONDS = 300
WRITE_LOCK_LEASE_SECONDS = 60


def output_root() -> str:
    """Where `taxi_etl` writes: `TAXI_OUTPUT_ROOT` (a folder or an `s3://` prefix), else `./output`."""
    return os.environ.get("TAXI_OUTPUT_ROOT", str(PROJECT_ROOT / "output"))


def s3_endpoint_url() -> str | None:
    """A custom S3 endpoint (moto, MinIO, ...) from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`; None for AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def storage_options(uri: str) -> dict:
    """fsspec options for `uri`: the S3 endpoint for `s3://` URIs, nothing for local paths or HTTP."""
    if uri.startswith("s3://") and (endpoint := s3_endpoint_url()):
        return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


# Prefect blocks for S3 result storage (`python -m blocks.register`).
S3_BUCKET_BLOCK = "taxi-results"
AWS_CREDENTIALS_BLOCK = "taxi-aws"
RUN_DIR = PROJECT_ROOT / ".run"  # process ids and URLs of the local servers the Makefile starts


def s3_bucket_name() -> str:
    """The bucket for task results: `TAXI_S3_BUCKET`, default `taxi-results`."""
    return os.environ.get("TAXI_S3_BUCKET", "taxi-results")


def aws_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
