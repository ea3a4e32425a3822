"""Lake maintenance: vacuum keeps what the retention needs, compaction keeps the rows, a month or the whole lake
rolls back to an earlier version from the flow and from the command line."""

from __future__ import annotations

import pytest

from flows import maintenance
from tasks.lake import compact, open_table, read_month, rollback_month, vacuum, write_month
from tests.test_lake import FEB_2025
from tests.test_lake_crash import JAN_2025, SERVICE, month_from, sources_of
from tests.test_lake_crash import leftover_data_files as data_files


def test_vacuum_keeps_recent_versions_and_removes_what_no_version_needs(tmp_path):
    root = str(tmp_path)
    write_month(root, SERVICE, JAN_2025, month_from("A"))
    write_month(root, SERVICE, JAN_2025, month_from("B"))
    assert vacuum(root) == {"trips": 0, "quarantine": 0}  # the default week keeps version 0's files
    assert sources_of({"t": open_table(root, "trips", version=0).to_pyarrow_table()}) == {"t": {"A"}}
    assert vacuum(root, retention_hours=0) == {"trips": 1, "quarantine": 1}
    assert data_files(root, "trips") == 1 and sources_of(read_month(root, SERVICE, JAN_2025))["trips"] == {"B"}


def test_compaction_keeps_every_row(tmp_path):
    root = str(tmp_path)
    for source in ("A", "B"):
        write_month(root, SERVICE, JAN_2025 if source == "A" else FEB_2025, month_from(source))
    before = open_table(root, "trips").to_pyarrow_table().num_rows
    compact(root)
    assert open_table(root, "trips").to_pyarrow_table().num_rows == before == 8


def test_a_month_rolls_back_with_its_own_quarantine_and_a_vacuumed_version_is_refused(tmp_path):
    root = str(tmp_path)
    write_month(root, SERVICE, JAN_2025, month_from("A"))
    write_month(root, SERVICE, JAN_2025, month_from("B"))
    rollback_month(root, SERVICE, JAN_2025, 0)
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"A"}, "quarantine": {"A"}}
    vacuum(root, retention_hours=0)
    with pytest.raises(LookupError, match="removed by vacuum"):
        rollback_month(root, SERVICE, JAN_2025, 1)
    with pytest.raises(LookupError, match="not in the trips table"):
        rollback_month(root, "green", JAN_2025, 2)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_the_command_line_rolls_back_the_lake_and_vacuums(tmp_path, capsys):
    root = str(tmp_path)
    write_month(root, SERVICE, JAN_2025, month_from("A"))
    write_month(root, SERVICE, FEB_2025, month_from("A"))  # trips version 1 holds January and February of A
    write_month(root, SERVICE, JAN_2025, month_from("B"))
    write_month(root, SERVICE, FEB_2025, month_from("C"))
    assert maintenance.main(["rollback", "--output", root, "--version", "1"]) == 0
    assert "yellow 2025-02" in capsys.readouterr().out
    for month in (JAN_2025, FEB_2025):
        assert sources_of(read_month(root, SERVICE, month)) == {"trips": {"A"}, "quarantine": {"A"}}
    assert (
        maintenance.main(["rollback", "--output", root, "--version", "2", "--service", "yellow", "--month", "2025-01"])
        == 0
    )
    assert sources_of(read_month(root, SERVICE, JAN_2025))["trips"] == {"B"}
    assert maintenance.main(["vacuum", "--output", root, "--retention-hours", "0"]) == 0
    assert '"vacuumed"' in capsys.readouterr().out
    assert sources_of(read_month(root, SERVICE, FEB_2025))["trips"] == {"A"}


def test_help_runs_nothing(capsys):
    with pytest.raises(SystemExit) as exit_info:
        maintenance.main(["--help"])
    assert exit_info.value.code == 0 and "rollback" in capsys.readouterr().out
