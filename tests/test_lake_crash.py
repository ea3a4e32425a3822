"""A month stays whole and readable when the writing process is killed at any step: SIGKILL in real children.

Each case writes month A, then starts a child that writes month B and kills itself (SIGKILL, no clean-up runs) at
one step of a month's write (`tasks/lake/tables.py`): while streaming quarantine's files, between the two
commits, while streaming trips' files, right after the trips commit. The child wraps the lake module's own
functions (`write_deltalake`, `_commit_month`), so production code carries no test hook. After the kill:

- `read_month` returns one run's month, trips and quarantine together: A until the trips commit, B after;
- both tables still open and read whole with a plain Delta reader (`pl.scan_delta`);
- the next write of the month succeeds and replaces the month in both tables (also a quarantine commit whose
  trips never came, which a plain reader of quarantine alone sees until then), and `vacuum` removes the killed
  writer's uncommitted files.

Run as `python -m tests.test_lake_crash ROOT SOURCE [TABLE STEP]`, this module is that child; it imports the
Prefect-free lake only, so a child starts in about a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import polars as pl
import pyarrow as pa
import pytest

from tasks import settings
from tasks.lake import open_table, read_month, table_uri, write_month
from tasks.lake import tables as lake_tables
from tasks.months import Month

SERVICE = "yellow"
JAN_2025 = Month.parse("2025-01")


def month_from(source: str, batches: int = 1) -> dict[str, pa.Table]:
    """A month whose every row names the source it came from; sources differ in row counts too."""
    rows = {"A": 3, "B": 5, "C": 7}.get(source, 4)
    trips = pa.table({"source": [source] * rows, "fare": [float(i) for i in range(rows)]})
    quarantine = pa.table({"source": [source] * (rows - 2), "reason": ["non_positive_total"] * (rows - 2)})
    return {"trips": pa.concat_tables([trips] * batches), "quarantine": pa.concat_tables([quarantine] * batches)}


def sources_of(tables: dict[str, pa.Table]) -> dict[str, set[str]]:
    return {dataset: set(table.column("source").to_pylist()) for dataset, table in tables.items()}


def run_child(root: str, source: str, *kill: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.test_lake_crash", root, source, *kill]
    return subprocess.run(command, cwd=settings.PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def plain_delta_rows(root: str) -> dict[str, int]:
    """Each table read whole by polars' Delta reader: it must open at every point."""
    options = settings.delta_storage_options(root)
    return {
        name: pl.scan_delta(table_uri(root, name), storage_options=options).collect().height
        for name in ("trips", "quarantine")
    }


# (step, table, where, what read_month sees)
KILL_POINTS = [
    ("while writing quarantine files", "quarantine", "streaming", "A"),
    ("between the two commits", "quarantine", "committed", "A"),
    ("while writing trips files", "trips", "streaming", "A"),
    ("after the trips commit", "trips", "committed", "B"),
]


@pytest.fixture(params=["local", "s3"])
def lake_root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"s3://{request.getfixturevalue('s3_bucket')}/lake"


@pytest.mark.parametrize("step, table, where, committed", KILL_POINTS, ids=[p[0] for p in KILL_POINTS])
def test_sigkill_at_any_step_leaves_one_whole_readable_month(lake_root, step, table, where, committed):
    root = lake_root
    write_month(root, SERVICE, JAN_2025, month_from("A"))

    child = run_child(root, "B", table, where)
    assert child.returncode == -signal.SIGKILL, f"the child was not killed {step}: {child.stderr[-2000:]}"

    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {committed}, "quarantine": {committed}}
    assert (
        plain_delta_rows(root)["trips"] == {"A": 3, "B": 15}[committed]
    )  # the child writes its month three times over

    write_month(root, SERVICE, JAN_2025, month_from("C"))
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"C"}, "quarantine": {"C"}}
    assert plain_delta_rows(root) == {"trips": 7, "quarantine": 5}  # a killed writer's quarantine is replaced too
    for name in ("trips", "quarantine"):
        delta = open_table(root, name)
        referenced = set(delta.file_uris())
        delta.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        assert {uri for uri in referenced} == set(open_table(root, name).file_uris())
        assert leftover_data_files(root, name) == len(referenced)  # the killed writer's files are gone


def leftover_data_files(root: str, table: str) -> int:
    import fsspec

    filesystem, path = fsspec.core.url_to_fs(table_uri(root, table), **settings.fsspec_options(root))
    return len([f for f in filesystem.find(path) if f.endswith(".parquet") and "/_delta_log/" not in f])


def test_the_child_writes_a_whole_month_when_not_killed(tmp_path):
    root = str(tmp_path / "lake")
    child = run_child(root, "B")
    assert child.returncode == 0, child.stderr
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"B"}, "quarantine": {"B"}}


def kill_at(table: str, where: str) -> None:
    """SIGKILL this process while `table`'s month streams into Delta (after its first batch), or once its commit
    is done."""
    real_write, real_commit = lake_tables.write_deltalake, lake_tables._commit_month

    def write_deltalake(uri, data, **kwargs):
        if where == "streaming" and str(uri).rstrip("/").endswith(table):
            data = pa.RecordBatchReader.from_batches(data.schema, die_after_first(data))
        return real_write(uri, data, **kwargs)

    def commit_month(root, name, *args, **kwargs):
        version = real_commit(root, name, *args, **kwargs)
        if where == "committed" and name == table:
            os.kill(os.getpid(), signal.SIGKILL)
        return version

    lake_tables.write_deltalake, lake_tables._commit_month = write_deltalake, commit_month


def die_after_first(reader: pa.RecordBatchReader):
    for number, batch in enumerate(reader):
        if number == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        yield batch


def main(root: str, source: str, table: str | None = None, where: str = "") -> None:
    if table:
        kill_at(table, where)
    data = month_from(source, batches=3)
    data = {name: pa.Table.from_batches(t.to_batches(max_chunksize=t.num_rows // 3)) for name, t in data.items()}
    write_month(root, SERVICE, JAN_2025, data)


if __name__ == "__main__":
    main(*sys.argv[1:])
