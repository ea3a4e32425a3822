"""Create (or update) the S3 blocks the lessons store results in, and the bucket itself when it is missing.

    python -m blocks.register

Reads only the environment, so no secret is ever in code, YAML or logs: `TAXI_S3_BUCKET` (default
`taxi-results`), `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL` (moto, MinIO; unset
for AWS) and the keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; unset to let boto3 find credentials its
usual way; temporary ones, with `AWS_SESSION_TOKEN`, are never stored). Saves an `AwsCredentials` block `taxi-aws`
and an `S3Bucket` block `taxi-results`; running it again overwrites them with the current environment, so it is
safe to repeat. Only this command (a user's explicit act) overwrites them: flows use the saved blocks, or blocks of
their own (`save_blocks`).
"""

from __future__ import annotations

import argparse
import sys

from botocore.exceptions import ClientError
from prefect_aws import AwsCredentials, S3Bucket

from tasks import settings


def credentials_from_env() -> AwsCredentials:
    """An `AwsCredentials` block built from the environment (the secret key stays a `SecretStr`, never printed):
    `tasks.settings.aws_credentials()`, the object the lake's S3 options come from too.

    Temporary credentials (with `AWS_SESSION_TOKEN`) are not stored: prefect-aws keeps the session token as plain
    text, shown by the block's repr and by the API, and they expire within hours anyway. The block then holds no
    keys and boto3 finds them, as usual, in the environment of the process that uses it.
    """
    return settings.aws_credentials()


def ensure_bucket(credentials: AwsCredentials, bucket: str) -> bool:
    """Create `bucket` if it does not exist (an `S3Bucket` block never creates it). True if it was created."""
    client = credentials.get_s3_client()
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    region = credentials.region_name
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    client.create_bucket(Bucket=bucket, **location)
    return True


def save_blocks(
    bucket_block: str, credentials_block: str, overwrite: bool = False, credentials: AwsCredentials | None = None
) -> bool:
    """Save an `AwsCredentials` block (`credentials`, by default the environment's) and an `S3Bucket` block on it;
    create the bucket when missing.

    Returns whether the bucket was created. Without `overwrite`, an existing block of either name is an error.
    """
    credentials = credentials or credentials_from_env()
    credentials.save(credentials_block, overwrite=overwrite)
    bucket = settings.s3_bucket_name()
    S3Bucket(bucket_name=bucket, credentials=credentials).save(bucket_block, overwrite=overwrite)
    return ensure_bucket(credentials, bucket)


def register_blocks() -> str:
    """Save (overwrite) the project's two blocks, create the bucket when missing; returns the `result_storage` slug."""
    created = save_blocks(settings.S3_BUCKET_BLOCK, settings.AWS_CREDENTIALS_BLOCK, overwrite=True)
    bucket = settings.s3_bucket_name()
    where = settings.s3_endpoint_url() or "AWS"
    print(
        f"blocks {settings.AWS_CREDENTIALS_BLOCK}, {settings.S3_BUCKET_BLOCK} saved; bucket {bucket} on {where}"
        f"{' created' if created else ' exists'}"
    )
    return f"s3-bucket/{settings.S3_BUCKET_BLOCK}"


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m blocks.register", description=__doc__.split("\n\n")[0]).parse_args(argv)
    return 0 if register_blocks() else 1


if __name__ == "__main__":
    sys.exit(main())
