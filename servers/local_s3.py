"""A local S3 for lessons and tests: moto in server mode on 127.0.0.1, on a free port.

`local_s3()` runs one inside this process for as long as the `with` block lasts and yields an `AwsCredentials`
block for it (its endpoint and throwaway keys): whatever is built from that block (an `S3Bucket`, a client) talks
to moto, and the process's environment, which other threads and later code read, is left as it was.
`python -m servers.local_s3` runs a standing one in the foreground (`make s3` starts it in the background through
`python -m servers start s3`, which records its process id).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters
from pydantic import SecretStr

from tasks import settings

TEST_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def start_moto(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    host, bound_port = server.get_host_and_port()
    return server, f"http://{host}:{bound_port}"


def moto_credentials(endpoint: str) -> AwsCredentials:
    """An (unsaved) `AwsCredentials` block for the moto server at `endpoint`, with moto's throwaway keys."""
    return AwsCredentials(
        aws_access_key_id=TEST_KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SecretStr(TEST_KEYS["AWS_SECRET_ACCESS_KEY"]),
        region_name=settings.aws_region(),
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
    )


@contextmanager
def local_s3() -> Iterator[AwsCredentials]:
    """A moto S3 server for the duration of the block; yields credentials that reach it."""
    server, endpoint = start_moto()
    try:
        yield moto_credentials(endpoint)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m servers.local_s3", description=__doc__.split("\n\n")[0]).parse_args(argv)
    server, endpoint = start_moto(int(os.environ.get("TAXI_S3_PORT", "0")))
    print(f"moto S3 on {endpoint}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
