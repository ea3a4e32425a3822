"""A month stays whole when the writing process is killed at any step: SIGKILL in real child processes.

Each case writes month A, then starts a child that writes month B and kills itself (SIGKILL, no clean-up runs) at
one step of the commit protocol (tasks/load.py). The child wraps one method of the very filesystem object
`write_month` uses (fsspec caches it), so production code carries no test hook. After the kill:

- `read_month` returns one run's month, trips and quarantine together: A before the commit record, B after;
- the plain view (`part-0.parquet`) is whole: A/A before publishing, B/B after, and trips B beside quarantine A
  only when killed between the two replacements (as the protocol's docstring warns);
- nothing but `part-0.parquet` is inside `trips/` or `quarantine/`: leftovers are only under `_versions/`;
- the next write of the month succeeds and collects the leftovers.

Run as `python -m tests.test_commit_crash ROOT SOURCE [METHOD PATH_PART NTH]`, this module is that child; it imports
the Prefect-free writer only (`tasks/commit.py`), so a child starts in about a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import wraps

import pyarrow as pa
import pytest

from tasks import lake, settings
from tasks.commit import partition_path, write_month
from tasks.lake import committed_files, filesystem_for, read_month
from tasks.months import Month

SERVICE = "yellow"
JAN_2025 = Month.parse("2025-01")


def month_from(source: str) -> dict[str, pa.Table]:
    """A month whose every row names the source it came from; sources differ in row counts too."""
    rows = {"A": 3, "B": 5, "C": 7}.get(source, 4)
    return {
        "trips": pa.table({"source": [source] * rows, "fare": [float(i) for i in range(rows)]}),
        "quarantine": pa.table({"source": [source] * (rows - 2), "reason": ["non_positive_total"] * (rows - 2)}),
    }


def kill_at(filesystem, method: str, path_part: str, nth: int) -> None:
    """Make the `nth` call of `filesystem.method` on a path containing `path_part` SIGKILL this process."""
    real = getattr(filesystem, method)
    calls = []

    @wraps(real)
    def wrapper(*args, **kwargs):
        if path_part in " ".join(str(a) for a in args):
            calls.append(args)
            if len(calls) == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(filesystem, method, wrapper)


def run_child(root: str, source: str, *kill: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.test_commit_crash", root, source, *kill]
    return subprocess.run(command, cwd=settings.PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def sources_of(tables: dict[str, pa.Table]) -> dict[str, set[str]]:
    return {dataset: set(table.column("source").to_pylist()) for dataset, table in tables.items()}


def plain_view(root: str) -> dict[str, set[str]]:
    import pyarrow.parquet as pq

    filesystem = filesystem_for(root)
    tables = {}
    for dataset in ("trips", "quarantine"):
        with filesystem.open(f"{partition_path(root, dataset, SERVICE, JAN_2025)}/part-0.parquet", "rb") as handle:
            tables[dataset] = pq.read_table(handle)
    return sources_of(tables)


def files_under(root: str, folder: str) -> list[str]:
    filesystem = filesystem_for(root)
    base = filesystem._strip_protocol(root).rstrip("/")
    return sorted(path[len(base) + 1 :] for path in filesystem.find(f"{base}/{folder}"))


# (step, method per backend, path part, nth call, what read_month sees, what the plain view shows)
KILL_POINTS = [
    ("after the first staged file", {"local": "open", "s3": "open"}, "quarantine.pq", 1, "A", ("A", "A")),
    ("after both staged files", {"local": "pipe_file", "s3": "pipe_file"}, "", 1, "A", ("A", "A")),
    ("record written, not renamed", {"local": "mv", "s3": None}, "commit.json", 1, "A", ("A", "A")),
    ("after the commit", {"local": "link", "s3": "cp_file"}, "trips.pq", 1, "B", ("A", "A")),
    ("between publish steps", {"local": "link", "s3": "cp_file"}, "quarantine.pq", 1, "B", ("B", "A")),
    ("during garbage collection", {"local": "rm_file", "s3": "rm_file"}, "", 2, "B", ("B", "B")),
]


@pytest.fixture(params=["local", "s3"])
def lake_root(request, tmp_path) -> tuple[str, str]:
    if request.param == "local":
        return "local", str(tmp_path / "lake")
    bucket = request.getfixturevalue("s3_bucket")
    return "s3", f"s3://{bucket}/lake"


@pytest.mark.parametrize(
    "step, methods, path_part, nth, committed, plain", KILL_POINTS, ids=[p[0] for p in KILL_POINTS]
)
def test_sigkill_leaves_one_whole_month(lake_root, step, methods, path_part, nth, committed, plain):
    backend, root = lake_root
    if methods[backend] is None:
        pytest.skip(f"{backend} has no such step: its commit record is one PUT")
    write_month(month_from("A"), root, SERVICE, JAN_2025)

    child = run_child(root, "B", methods[backend], path_part, str(nth))
    assert child.returncode == -signal.SIGKILL, f"the child was not killed at {step}: {child.stderr[-2000:]}"

    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {committed}, "quarantine": {committed}}
    assert plain_view(root) == {"trips": {plain[0]}, "quarantine": {plain[1]}}
    for dataset in ("trips", "quarantine"):
        assert files_under(root, dataset) == [f"{dataset}/service=yellow/year=2025/month=01/part-0.parquet"]

    write_month(month_from("C"), root, SERVICE, JAN_2025)
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"C"}, "quarantine": {"C"}}
    assert plain_view(root) == {"trips": {"C"}, "quarantine": {"C"}}
    version = committed_files(root, SERVICE, JAN_2025)["trips"].split("/")[-2]
    assert files_under(root, "_versions") == [
        f"_versions/service=yellow/year=2025/month=01/{version}/quarantine.pq",
        f"_versions/service=yellow/year=2025/month=01/{version}/trips.pq",
        "_versions/service=yellow/year=2025/month=01/commit.json",
    ]


def test_the_child_writes_a_whole_month_when_not_killed(tmp_path):
    root = str(tmp_path / "lake")
    child = run_child(root, "B")
    assert child.returncode == 0, child.stderr
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"B"}, "quarantine": {"B"}}


def main(root: str, source: str, method: str | None = None, path_part: str = "", nth: str = "1") -> None:
    if method:
        kill_at(lake.filesystem_for(root), method, path_part, int(nth))
    write_month(month_from(source), root, SERVICE, JAN_2025)


if __name__ == "__main__":
    main(*sys.argv[1:])
