"""Lesson 2, task results in S3 through a prefect-aws `S3Bucket` block.

What it does. `result_storage="s3-bucket/taxi-results"` tells Prefect to persist a task's result as an object in
the bucket that block names, under `result_storage_key` (here `lesson-s3/<flow run>/<service>-<month>-trips`).
Any process that can load the block (a retry, a cached rerun, another worker, a notebook) can read it back.
`blocks/register.py` creates the `AwsCredentials` and `S3Bucket` blocks from the environment and creates the
bucket when it is missing. The frame is stored with `ParquetSerializer` (`flows/compression.py` shows why).

When it helps. Work spread over machines (Dask workers, Kubernetes pods) that share no disk, and results that must
outlive the process: retries and caching then work across workers and runs.

What it costs. A network round trip and the serializer's time on every persisted result, and storage to clean
up (set a lifecycle rule on the bucket). For results nobody reads again, don't persist them.

Where S3 comes from. With no endpoint configured and no AWS credentials, `python -m flows.s3_results` starts moto
(a local S3 API) on 127.0.0.1 for the run; `make s3` starts a standing one; with real credentials it uses AWS
(`TAXI_S3_BUCKET` names the bucket).

Run it: `python -m flows.s3_results` (prints the objects written and loads one back).
"""

from __future__ import annotations

from contextlib import nullcontext

import boto3
import pyarrow as pa
from prefect import flow, task
from prefect_aws import S3Bucket

from blocks.local_s3 import local_s3
from blocks.register import register_blocks
from tasks import settings
from tasks.months import Month
from tasks.pipeline import transform_month
from tasks.plan import sample_plan
from tasks.serializers import ParquetSerializer
from tasks.zones import load_zone_table

RESULT_STORAGE = f"s3-bucket/{settings.S3_BUCKET_BLOCK}"
RESULT_PREFIX = "lesson-s3"


# No `cache_policy` here on purpose: with `result_storage_key` set, Prefect keys the result by that template and
# hashes no argument. Adding `cache_policy=NO_CACHE` would silently persist nothing (Prefect 3.8 computes no key).
@task(
    persist_result=True,
    result_storage=RESULT_STORAGE,
    result_serializer=ParquetSerializer(),
    result_storage_key=RESULT_PREFIX + "/{flow_run.id}/{parameters[service]}-{parameters[month]}-trips",
)
def clean_trips(source: str, service: str, month: str) -> pa.Table:
    """One month's clean, enriched trips, persisted to S3 as parquet."""
    _, trips, _ = transform_month(source, service, Month.parse(month), load_zone_table(), "polars")
    return trips


@task(
    persist_result=True,
    result_storage=RESULT_STORAGE,
    result_serializer="compressed/json",
    result_storage_key=RESULT_PREFIX + "/{flow_run.id}/{parameters[service]}-borough-counts",
)
def borough_counts(trips: list[pa.Table], service: str) -> dict[str, int]:
    """Trips per pickup borough over all months: a small summary, persisted as compressed JSON."""
    boroughs = pa.concat_tables([table.select(["pu_borough"]) for table in trips])
    grouped = boroughs.group_by("pu_borough").aggregate([("pu_borough", "count")]).to_pylist()
    return {row["pu_borough"] or "unknown": row["pu_borough_count"] for row in grouped}


@flow(name="lesson-s3-results")
def s3_results(service: str = "yellow", months: list[str] | None = None, source: str = settings.SAMPLE_SOURCE) -> dict:
    """Persist each month's trips and a summary to the S3 block; return the object keys written."""
    from prefect.runtime import flow_run

    trips = [clean_trips(uri, service, str(month)) for month, uri in sample_plan(service, months, source)]
    counts = borough_counts(trips, service)
    return {"counts": counts, "prefix": f"{RESULT_PREFIX}/{flow_run.id}/"}


def list_objects(prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url(), region_name=settings.aws_region())
    listing = client.list_objects_v2(Bucket=settings.s3_bucket_name(), Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def needs_local_s3() -> bool:
    """No endpoint configured and no AWS credentials anywhere: use a local moto server."""
    return settings.s3_endpoint_url() is None and boto3.Session().get_credentials() is None


@flow(name="lesson-s3")
def s3_results_lesson(service: str = "yellow", months: list[str] | None = None) -> dict:
    """The whole lesson as one deployable flow: S3 (local moto if none is configured), blocks, results."""
    return demonstrate(service, months)


def demonstrate(service: str = "yellow", months: list[str] | None = None) -> dict:
    with local_s3() if needs_local_s3() else nullcontext():
        register_blocks()
        result = s3_results(service, months)
        keys = list_objects(result["prefix"])
        first = S3Bucket.load(settings.S3_BUCKET_BLOCK).read_path(keys[-1])
        return {**result, "keys": keys, "first_object_bytes": len(first)}


if __name__ == "__main__":
    outcome = demonstrate()
    print(f"bucket {settings.s3_bucket_name()}, objects under {outcome['prefix']}:")
    for key in outcome["keys"]:
        print(f"  {key}")
    print(f"trips per pickup borough: {outcome['counts']}")
