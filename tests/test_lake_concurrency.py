"""Concurrent writers of one month, without the Prefect lock: Delta's optimistic concurrency keeps the month whole.

Writers of the same month race in threads of one process and in separate processes, on disk and on a moto S3
server (where a commit is a conditional PUT: `settings.delta_storage_options`). Each writer either commits or,
after `settings.LAKE_COMMIT_ATTEMPTS` lost conflicts, raises `LakeWriteConflict` saying so; the month ends as one
writer's trips beside the same writer's quarantine, and every commit of the month is a whole write.

Run as `python -m tests.test_lake_concurrency ROOT SOURCE GO_FILE`, this module is one racing writer.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tasks import settings
from tasks.lake import LakeWriteConflict, read_month, write_month
from tasks.lake.tables import committed_version
from tasks.months import Month
from tests.test_lake_crash import JAN_2025, SERVICE, month_from, sources_of

WRITERS = ("A", "B", "C", "D")


@pytest.fixture(params=["local", "s3"])
def lake_root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"s3://{request.getfixturevalue('s3_bucket')}/lake"


def assert_one_writers_month(root: str, committed: list[str]) -> None:
    month = sources_of(read_month(root, SERVICE, JAN_2025))
    assert month in ({"trips": {s}, "quarantine": {s}} for s in committed), month


def test_threads_writing_one_month_leave_one_writers_month(lake_root):
    write_month(lake_root, SERVICE, JAN_2025, month_from("0"))  # the tables exist: the race is over one month
    go, outcomes = threading.Barrier(len(WRITERS)), {}

    def writer(source: str) -> None:
        go.wait()
        try:
            write_month(lake_root, SERVICE, JAN_2025, month_from(source))
            outcomes[source] = "committed"
        except LakeWriteConflict as error:
            outcomes[source] = str(error)

    threads = [threading.Thread(target=writer, args=(source,)) for source in WRITERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    committed = [s for s, outcome in outcomes.items() if outcome == "committed"]
    assert len(outcomes) == len(WRITERS) and committed, outcomes
    for outcome in outcomes.values():
        assert outcome == "committed" or "another writer committed this month" in outcome
    assert_one_writers_month(lake_root, committed)


def test_a_writer_finds_its_commit_after_another_writer_replaced_the_month(tmp_path):
    """The race the process test met on S3, made sequential: writer A commits, then B commits the same month and
    another month follows, all before A reads back its version. A's version is still found, not an error."""
    root = str(tmp_path / "lake")
    first = write_month(root, SERVICE, JAN_2025, month_from("A"))
    write_month(root, SERVICE, JAN_2025, month_from("B"))
    write_month(root, SERVICE, Month.parse("2025-02"), month_from("C"))
    for table, version in first.versions.items():
        assert committed_version(root, table, SERVICE, JAN_2025, first.write_id) == version
    with pytest.raises(LookupError, match="in none of the table's versions"):
        committed_version(root, "trips", SERVICE, JAN_2025, first.write_id + 1)


def test_processes_writing_one_month_leave_one_writers_month(lake_root, tmp_path):
    write_month(lake_root, SERVICE, JAN_2025, month_from("0"))
    go = tmp_path / "go"
    children = {
        source: subprocess.Popen(
            [sys.executable, "-m", "tests.test_lake_concurrency", lake_root, source, str(go)],
            cwd=settings.PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for source in WRITERS[:2]
    }
    time.sleep(3)  # both have imported the lake and wait for the go file
    go.touch()
    outputs = {source: child.communicate(timeout=240)[0] for source, child in children.items()}
    committed = [s for s, child in children.items() if child.returncode == 0]
    assert committed, outputs
    for source, child in children.items():
        assert child.returncode == 0 or "LakeWriteConflict" in outputs[source], outputs[source][-2000:]
    assert_one_writers_month(lake_root, committed)


def main(root: str, source: str, go_file: str) -> None:
    while not Path(go_file).exists():
        time.sleep(0.01)
    write_month(root, SERVICE, JAN_2025, month_from(source))


if __name__ == "__main__":
    main(*sys.argv[1:])
