"""Lake maintenance: vacuum keeps what the retention needs, compaction keeps the rows, a month or the whole lake
rolls back to an earlier version (the lake with Delta's own restore, both tables a pair) from the flow and from the
command line."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from flows import maintenance
from tasks import settings
from tasks.lake import (
    compact,
    month_lineage,
    open_table,
    read_month,
    rollback_lake,
    rollback_month,
    table_uri,
    vacuum,
    write_month,
    written_by_run,
)
from tasks.lake.tables import TABLES
from tasks.months import Month
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


MAR_2025 = Month(2025, 3)


@pytest.fixture(params=["local", "s3"])
def lake_root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"s3://{request.getfixturevalue('s3_bucket')}/lake"


def lake_of_four_writes(root: str) -> None:
    """Trips version 1 holds January and February of run A; later writes replace both and add March."""
    write_month(root, SERVICE, JAN_2025, month_from("A"), {"flow_run_id": "run-A"})
    write_month(root, SERVICE, FEB_2025, month_from("A"), {"flow_run_id": "run-A"})
    write_month(root, SERVICE, JAN_2025, month_from("B"), {"flow_run_id": "run-B"})
    write_month(root, SERVICE, FEB_2025, month_from("C"))
    write_month(root, SERVICE, MAR_2025, month_from("C"))


def plain_sources(root: str) -> dict[str, set[str]]:
    """What a plain Delta reader of each table alone sees now."""
    options = settings.delta_storage_options(root)
    read = {name: pl.scan_delta(table_uri(root, name), storage_options=options).collect() for name in TABLES}
    return {name: set(frame["source"]) for name, frame in read.items()}


def rolled_back(root: str, version: int) -> list[str]:
    """`rollback_lake`, in a child process on S3: deltalake's restore holds Python's GIL, which the moto server
    running in this process's thread needs to answer it."""
    if not root.startswith("s3://"):
        return rollback_lake(root, version)
    code = "import json, sys; from tasks.lake import rollback_lake; "
    code += "print(json.dumps(rollback_lake(sys.argv[1], int(sys.argv[2]))))"
    child = subprocess.run(
        [sys.executable, "-c", code, root, str(version)], cwd=settings.PROJECT_ROOT, capture_output=True, text=True
    )
    assert child.returncode == 0, child.stderr[-2000:]
    return json.loads(child.stdout)


def test_the_lake_rolls_back_with_delta_restore_to_a_pair_of_tables_and_forward_again(lake_root):
    root = lake_root
    lake_of_four_writes(root)
    assert rolled_back(root, 1) == ["yellow 2025-01", "yellow 2025-02"]
    for name in TABLES:  # Delta's restore: version 1's files named again, nothing rewritten
        table = open_table(root, name)
        assert table.version() == 5
        assert set(table.file_uris()) == set(open_table(root, name, version=1).file_uris())
    for month in (JAN_2025, FEB_2025):
        assert sources_of(read_month(root, SERVICE, month)) == {"trips": {"A"}, "quarantine": {"A"}}
    assert read_month(root, SERVICE, MAR_2025) == {}  # written after version 1: gone with it
    assert plain_sources(root) == {"trips": {"A"}, "quarantine": {"A"}}  # each table alone agrees too

    assert rolled_back(root, 4) == ["yellow 2025-01", "yellow 2025-02", "yellow 2025-03"]  # undone by a restore
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"B"}, "quarantine": {"B"}}
    assert sources_of(read_month(root, SERVICE, MAR_2025)) == {"trips": {"C"}, "quarantine": {"C"}}
    write_month(root, SERVICE, FEB_2025, month_from("D"))  # and writes go on pairing as before
    assert sources_of(read_month(root, SERVICE, FEB_2025)) == {"trips": {"D"}, "quarantine": {"D"}}


def test_after_a_lake_rollback_lineage_and_the_run_mark_name_the_restored_write(tmp_path):
    root = str(tmp_path)
    lake_of_four_writes(root)
    assert month_lineage(root, SERVICE, JAN_2025)["flow_run_id"] == "run-B"
    rollback_lake(root, 1)
    assert [open_table(root, name).history(1)[0]["operation"] for name in TABLES] == ["RESTORE", "RESTORE"]
    lineage = month_lineage(root, SERVICE, JAN_2025)
    assert (lineage["flow_run_id"], lineage["table_version"]) == ("run-A", 0)
    assert written_by_run(root, SERVICE, JAN_2025, "run-A")["rows_clean"] == 3
    assert written_by_run(root, SERVICE, JAN_2025, "run-B") is None
    assert month_lineage(root, SERVICE, MAR_2025) is None


def test_a_lake_rollback_to_vacuumed_files_is_refused_and_changes_nothing(tmp_path):
    root = str(tmp_path)
    write_month(root, SERVICE, JAN_2025, month_from("A"))
    write_month(root, SERVICE, JAN_2025, month_from("B"))
    open_table(root, "trips").vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    with pytest.raises(LookupError, match="removed by vacuum"):
        rollback_lake(root, 0)  # quarantine's files are there: its restore is undone when trips' is refused
    assert sources_of(read_month(root, SERVICE, JAN_2025)) == {"trips": {"B"}, "quarantine": {"B"}}
    assert plain_sources(root) == {"trips": {"B"}, "quarantine": {"B"}}
    with pytest.raises(LookupError, match="no version 9"):
        rollback_lake(root, 9)


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
