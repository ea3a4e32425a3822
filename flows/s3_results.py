"""Lesson 2, task results in S3 through a prefect-aws `S3Bucket` block.

What it does. `result_storage="s3-bucket/<block>"` tells Prefect to persist a task's result as an object in the
bucket that block names, under `result_storage_key` (here `lesson-s3/<flow run>/<service>-<month>-trips`, unique
per run: an existing key would be returned as already computed). Any process that can load the block (a retry,
a cached rerun, another worker, a notebook) can read it back. The frame is stored with `ParquetSerializer`
(`flows/compression.py` shows why), the borough counts as compressed JSON.

When it helps. Work spread over machines (Dask workers, Kubernetes pods) that share no disk, and results that must
outlive the process: retries and caching then work across workers and runs.

What it costs. A network round trip and the serializer's time on every persisted result, and storage to clean
up (set a lifecycle rule on the bucket). For results nobody reads again, don't persist them.

Which bucket. The blocks are the user's: a run never rewrites them. `python -m blocks.register` saves the
project's `taxi-results` block from the environment; when it exists and its bucket answers, the lesson uses it.
Otherwise the run saves blocks of its own under a unique name (`lesson-s3-<id>`), from the environment, on a local
moto server it starts when no S3 is configured at all, and deletes them when it ends.

What you see. Each run publishes the table artifact `lesson-s3-results` (every object written, its bytes and what
it holds) and logs the same rows.

Run it: `python -m flows.s3_results` (prints the objects written and loads one back).

Course page: `docs/lessons/s3-results.md` (`make docs` builds the site).
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import pyarrow as pa
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from prefect import flow, task
from prefect.results import ResultStore
from prefect_aws import AwsCredentials, S3Bucket

from blocks.register import credentials_from_env, save_blocks
from tasks import settings
from tasks.months import Month
from tasks.observe.lesson_report import publish_lesson_table
from tasks.observe.metrics import metered
from tasks.observe.metrics_publish import monitored
from tasks.pipeline.month import read_month_in_memory
from tasks.pipeline.plan import sample_plan
from tasks.pipeline.zones import load_zone_table
from tasks.serializers import ParquetSerializer

RESULT_PREFIX = "lesson-s3"
ARTIFACT_KEY = "lesson-s3-results"


# No `cache_policy` here on purpose: with `result_storage_key` set, Prefect keys the result by that template and
# hashes no argument. Adding `cache_policy=NO_CACHE` would silently persist nothing (Prefect 3.9 computes no key).
# `result_storage` is set per run from the flow's `bucket_block` parameter.
@metered
@task(
    persist_result=True,
    result_serializer=ParquetSerializer(),
    result_storage_key=RESULT_PREFIX + "/{flow_run.id}/{parameters[service]}-{parameters[month]}-trips",
)
def clean_trips(source: str, service: str, month: str) -> pa.Table:
    """One month's clean, enriched trips, persisted to S3 as parquet."""
    _, trips, _ = read_month_in_memory(source, service, Month.parse(month), load_zone_table(), "polars")
    return trips


@metered
@task(
    persist_result=True,
    result_serializer="compressed/json",
    result_storage_key=RESULT_PREFIX + "/{flow_run.id}/{parameters[service]}-borough-counts",
)
def borough_counts(trips: list[pa.Table], service: str) -> dict[str, int]:
    """Trips per pickup borough over all months: a small summary, persisted as compressed JSON."""
    boroughs = pa.concat_tables([table.select(["pu_borough"]) for table in trips])
    grouped = boroughs.group_by("pu_borough").aggregate([("pu_borough", "count")]).to_pylist()
    return {row["pu_borough"] or "unknown": row["pu_borough_count"] for row in grouped}


@monitored
@flow(name="lesson-s3-results-months")
def s3_results(
    service: str = "yellow",
    months: list[str] | None = None,
    source: str = settings.SAMPLE_SOURCE,
    bucket_block: str = settings.S3_BUCKET_BLOCK,
) -> dict:
    """Persist each month's trips and a summary through the `S3Bucket` block `bucket_block`; list what was written."""
    from prefect.runtime import flow_run

    storage = f"s3-bucket/{bucket_block}"
    persist_trips = clean_trips.with_options(result_storage=storage)
    trips = [persist_trips(uri, service, str(month)) for month, uri in sample_plan(service, months, source)]
    counts = borough_counts.with_options(result_storage=storage)(trips, service)
    prefix = f"{RESULT_PREFIX}/{flow_run.id}/"
    objects = stored_objects(bucket_block, prefix)
    return {"counts": counts, "prefix": prefix, "bucket_block": bucket_block, "objects": objects}


def describe_object(key: str) -> str:
    return "borough counts (compressed JSON)" if key.endswith("-borough-counts") else "a month's trips (parquet)"


def stored_objects(bucket_block: str, prefix: str) -> dict[str, int]:
    """`{key: bytes}` of every object under `prefix` in the block's bucket, sorted by key."""
    listing = S3Bucket.load(bucket_block).list_objects(prefix)
    return {item["Key"]: int(item["Size"]) for item in sorted(listing, key=lambda item: item["Key"])}


def list_objects(prefix: str, bucket_block: str = settings.S3_BUCKET_BLOCK) -> list[str]:
    return list(stored_objects(bucket_block, prefix))


def needs_local_s3() -> bool:
    """No endpoint configured and no AWS credentials anywhere (the block the environment gives finds none in boto3's
    usual places either): use a local moto server."""
    credentials = credentials_from_env()
    no_endpoint = credentials.aws_client_parameters.endpoint_url is None
    return no_endpoint and credentials.get_boto3_session().get_credentials() is None


def load_result(bucket_block: str, key: str):
    """The value a task run persisted under `key` through the `S3Bucket` block `bucket_block`, read as Prefect reads
    it (`ResultStore`: the record names its serializer, so any stored result loads without knowing which)."""
    return ResultStore(result_storage=S3Bucket.load(bucket_block)).read(key).result


def bucket_answers(credentials: AwsCredentials, bucket_name: str) -> bool:
    """Whether the bucket exists and its endpoint is up (one quick attempt: a dead endpoint fails in a second)."""
    session = credentials.get_boto3_session()
    client = session.client(
        "s3",
        endpoint_url=credentials.aws_client_parameters.endpoint_url,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )
    try:
        client.head_bucket(Bucket=bucket_name)
    except (BotoCoreError, ClientError):
        return False
    return True


def registered_bucket_is_live() -> bool:
    """The user's `taxi-results` block exists and its bucket answers."""
    try:
        bucket = S3Bucket.load(settings.S3_BUCKET_BLOCK)
    except ValueError:  # no such block
        return False
    return bucket_answers(bucket.credentials, bucket.bucket_name)


@contextmanager
def result_bucket() -> Iterator[str]:
    """The name of an `S3Bucket` block to store this run's results through, valid inside the `with` block.

    The user's registered block when it is live; otherwise blocks of the run's own, saved under a unique name
    from the environment (on a local moto when no S3 is configured) and deleted afterwards. Never overwrites.
    """
    if registered_bucket_is_live():
        yield settings.S3_BUCKET_BLOCK
        return
    from servers.local_s3 import local_s3  # moto: installed with the `local-s3` extra, needed only without S3

    with local_s3() if needs_local_s3() else nullcontext(credentials_from_env()) as credentials:
        name = f"lesson-s3-{uuid.uuid4().hex[:12]}"
        save_blocks(bucket_block=name, credentials_block=name, credentials=credentials)
        try:
            yield name
        finally:
            S3Bucket.delete(name)
            AwsCredentials.delete(name)


@monitored
@flow(name="lesson-s3-results")
def s3_results_lesson(service: str = "yellow", months: list[str] | None = None) -> dict:
    """The whole lesson as one deployable flow: a live bucket block (or the run's own), results, one read back.

    The artifact is published here, on the run a user started, not on the `s3_results` subflow's run."""
    result = demonstrate(service, months)
    publish_lesson_table(
        ARTIFACT_KEY,
        [{"object": key, "bytes": size, "holds": describe_object(key)} for key, size in result["objects"].items()],
        f"task results persisted through the S3Bucket block {result['bucket_block']} under {result['prefix']}; "
        f"the first month's trips loaded back: {result['first_trips_rows']:,} rows",
    )
    return result


def demonstrate(service: str = "yellow", months: list[str] | None = None) -> dict:
    """Persist the months' results to S3, then load the first month's trips back through the block."""
    with result_bucket() as bucket_block:
        result = s3_results(service, months, bucket_block=bucket_block)
        first_trips = next(key for key in result["objects"] if key.endswith("-trips"))
        loaded = load_result(bucket_block, first_trips)
        return {**result, "first_trips_object": first_trips, "first_trips_rows": loaded.num_rows}


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m flows.s3_results", description=__doc__.split("\n\n")[0]).parse_args(argv)
    outcome = demonstrate()
    print(f"through block {outcome['bucket_block']}, objects under {outcome['prefix']}:")
    for key, size in outcome["objects"].items():
        print(f"  {key}  {size:,} bytes")
    print(f"{outcome['first_trips_object']} loads back as {outcome['first_trips_rows']:,} trips")
    print(f"trips per pickup borough: {outcome['counts']}")


if __name__ == "__main__":
    main()
