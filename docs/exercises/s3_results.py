"""Exercise 2 (results in S3): persist a task's frame in your bucket, under a key no other run can collide with."""

from typing import Any

from prefect import Task

from tasks.serializers import ParquetSerializer


def persisted_in_s3(step: Task[Any, Any], bucket_block: str) -> Task[Any, Any]:
    """The same task, its result stored as parquet in the `S3Bucket` block `bucket_block`, one key per run."""
    return step.with_options(
        persist_result=True,
        result_storage=f"s3-bucket/{bucket_block}",
        result_serializer=ParquetSerializer(),
        result_storage_key="exercise-s3/{flow_run.id}/{task_run.name}",
    )
