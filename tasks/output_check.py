"""Check that a run's output root can take its months before any month is read.

A month is read, validated and transformed before it is written: with an output root that cannot be written (a
path that is a file, a folder the process may not write, a bucket that does not exist or an S3 endpoint that is
down) every month would spend its whole work and then fail at the write, each with an error about some file under
the root, or about S3 without saying whether the source or the output failed. `check_output_root` writes and
removes a small probe object under the root, the way the months will write, and fails the run at once with an
error naming the output root.
"""

from __future__ import annotations

import uuid

import fsspec

from tasks import settings
from tasks.redact import redact_text, redact_url

PROBE_PREFIX = ".taxi-write-check-"


class OutputRootError(RuntimeError):
    """The output root cannot be written: a file, a read-only folder, a missing bucket, an unreachable endpoint."""


def check_output_root(root: str) -> None:
    """Raise `OutputRootError` naming `root` unless a file can be written under it (and is removed again).

    A local root is created if missing, as the first month's write would; on S3 nothing but the probe is written
    (no bucket is created).
    """
    shown = redact_url(root)
    try:
        filesystem, path = fsspec.core.url_to_fs(root, **settings.fsspec_options(root))
        if "file" in filesystem.protocol:  # on S3 an object named like the prefix does not stop writes under it
            if filesystem.isfile(path):
                raise OutputRootError(f"output root {shown} is a file, not a folder: give a folder or an s3:// prefix")
            filesystem.makedirs(path, exist_ok=True)
        probe = f"{path.rstrip('/')}/{PROBE_PREFIX}{uuid.uuid4().hex}"
        filesystem.pipe_file(probe, b"")
        filesystem.rm_file(probe)
    except OutputRootError:
        raise
    except Exception as error:
        where = "the S3 output" if root.startswith("s3://") else "the output folder"
        raise OutputRootError(
            f"output root {shown} cannot be written ({where}, checked before reading any month): "
            f"{type(error).__name__}: {redact_text(str(error))}"
        ) from error
