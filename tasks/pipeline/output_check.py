"""Check that a run's output root can take its months before any month is read.

A month is read, validated and transformed before it is written: with an output root that cannot be written (a
path that is a file, a folder the process may not write, a bucket that does not exist or an S3 endpoint that is
down) every month would spend its whole work and then fail at the write, each with an error about some file under
the root, or about S3 without saying whether the source or the output failed. `check_output_root` writes and
removes a small probe object under the root, the way the months will write, and fails the run at once with an
error naming the output root.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import fsspec

from tasks import settings
from tasks.redact import redact_text, redact_url

PROBE_PREFIX = ".taxi-write-check-"


class OutputRootError(RuntimeError):
    """The output root cannot be written: a file, a read-only folder, a missing bucket, an unreachable endpoint."""


def check_output_root(root: str) -> None:
    """Raise `OutputRootError` naming `root` unless a file can be written under it (and is removed again).

    Nothing is left behind: a run that fails writes nothing, not even its output folder. Locally the probe is a
    folder made and removed in the root, or in its nearest existing parent when the root does not exist yet (the
    first month creates it); on S3 an empty object under the prefix, written and deleted (no bucket is created).
    """
    shown = redact_url(root)
    try:
        filesystem, path = fsspec.core.url_to_fs(root, **settings.fsspec_options(root))
        if "file" in filesystem.protocol:
            _check_folder(Path(path), shown)
        else:  # on S3 an object named like the prefix does not stop writes under it
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


def _check_folder(root: Path, shown: str) -> None:
    """A local root: a folder, or a path whose nearest existing parent is one, in which a folder can be made."""
    if root.is_file():
        raise OutputRootError(f"output root {shown} is a file, not a folder: give a folder or an s3:// prefix")
    existing = next(path for path in (root, *root.parents) if path.exists())
    if not existing.is_dir():
        raise OutputRootError(f"output root {shown} cannot be created: {existing} is a file, not a folder")
    Path(tempfile.mkdtemp(prefix=PROBE_PREFIX, dir=existing)).rmdir()  # raises PermissionError, OSError (EROFS)
