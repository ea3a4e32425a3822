"""`benchmarks.month_memory` times a month's Delta commits beside the month and reports their share (fast)."""

from __future__ import annotations

import pytest

from benchmarks import month_memory
from tasks.lake import tables, write_month
from tests.test_lake_crash import JAN_2025, SERVICE, month_from


@pytest.fixture
def restore_commit():
    commit = tables._commit_month
    yield
    tables._commit_month = commit


@pytest.mark.usefixtures("restore_commit")
def test_a_months_two_commits_are_timed_in_the_run_that_makes_them(tmp_path):
    seconds = month_memory.timed_commits()
    write_month(str(tmp_path), SERVICE, JAN_2025, month_from("A"))
    assert len(seconds) == 2 and all(0 < s < 60 for s in seconds)  # quarantine, then trips


def test_the_report_gives_the_commits_seconds_and_their_share_of_the_month():
    sample = {"peak_rss_mib": 600.0, "wall_seconds": 4.0, "cpu_seconds": 6.0, "commit_seconds": 0.5}
    table = month_memory.report({("project", 3_000_000): [sample]}, [3_000_000])
    assert "commit s (share)" in table.splitlines()[0]
    assert "| 0.500 (12.5%) |" in table.splitlines()[2]
