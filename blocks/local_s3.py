"""A local S3 for lessons and tests: moto in server mode on 127.0.0.1, on a free port.

`local_s3()` runs one inside this process for as long as the `with` block lasts and points the environment
(`AWS_ENDPOINT_URL` and throwaway keys) at it. `python -m blocks.local_s3` runs a standing one in the foreground
(`make s3` starts it in the background through `python -m servers start s3`, which records its process id).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

from tasks import settings

TEST_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def start_moto(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    host, bound_port = server.get_host_and_port()
    return server, f"http://{host}:{bound_port}"


@contextmanager
def local_s3() -> Iterator[str]:
    """A moto S3 server for the duration of the block; yields its endpoint URL and restores the environment."""
    server, endpoint = start_moto()
    changes = {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": settings.aws_region(), **TEST_KEYS}
    previous = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield endpoint
    finally:
        server.stop()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def main() -> None:
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
