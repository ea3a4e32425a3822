"""Local staging folders that a killed process does not leave behind for good.

A month is staged on local disk (a downloaded or converted source, the streamed parquet files before their
commit). `tempfile.TemporaryDirectory` removes its folder when the block ends, but a process killed by SIGKILL or
the out-of-memory killer runs no clean-up, and a month's staging is as large as the month. So `staging_folder`
makes its folder under one place (`settings.staging_root()`, the system's temporary folder by default), named
after its owner: host, process id and the process's start time (a pid is reused once its process is gone; with the start
time, a new process under an old pid is not taken for the folder's owner). Entering a staging folder first removes
the folders of owners on this host that are no longer running; a live owner's folder is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tasks import settings

PREFIX = "taxi-"
# taxi-<kind>-<pid>-<start in 1/100 s>@<host>-<tempfile's 8 random characters>
_OWNED = re.compile(r"^taxi-(?P<kind>[a-z0-9_]+)-(?P<pid>\d+)-(?P<start>\d+)@(?P<host>.+)-[a-z0-9_]{8}$")


def process_start(pid: int) -> int | None:
    """When process `pid` started, in hundredths of a second since the epoch (the kernel's clock ticks), or None
    if no such process runs."""
    try:
        return round(psutil.Process(pid).create_time() * 100)
    except psutil.NoSuchProcess:
        return None


def owner_alive(name: str, host: str | None = None) -> bool:
    """Whether the process that made staging folder `name` still runs: True for a folder of another host or not
    named as ours (nothing we can judge is removed), and for an owner whose start time we may not read."""
    found = _OWNED.match(name)
    if found is None or found["host"] != (host or socket.gethostname()):
        return True
    try:
        return process_start(int(found["pid"])) == int(found["start"])
    except psutil.AccessDenied:
        return True


def sweep(root: Path) -> list[Path]:
    """Remove the staging folders under `root` whose owners are gone; returns what was removed."""
    host = socket.gethostname()
    removed = []
    for folder in root.glob(f"{PREFIX}*"):
        if folder.is_dir() and not owner_alive(folder.name, host):
            shutil.rmtree(folder, ignore_errors=True)  # another process may be sweeping it too
            removed.append(folder)
    return removed


@contextmanager
def staging_folder(kind: str) -> Iterator[str]:
    """A new local folder for the `with` block (`kind` names what it stages, e.g. "month" or "source"), removed
    when the block ends however it ends; entering it sweeps the folders dead processes left under the same root."""
    if not re.fullmatch(r"[a-z0-9_]+", kind):
        raise ValueError(f"a staging kind is lower-case letters, digits and _ (so its folder can be swept): {kind!r}")
    root = Path(settings.staging_root())
    root.mkdir(parents=True, exist_ok=True)
    sweep(root)
    owner = f"{kind}-{os.getpid()}-{process_start(os.getpid())}@{socket.gethostname()}-"
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{owner}", dir=root)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
