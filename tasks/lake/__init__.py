"""The lake: `trips` and `quarantine`, Delta tables partitioned by service, year and month under the output root.

`tables` writes a month (two Delta transactions that pair: `tables`' docstring explains how), `read` reads a
month's pair or a consistent snapshot of every month, `lineage` tells who wrote a month from what, and
`maintenance` vacuums, compacts and rolls back. Nothing here imports Prefect.
"""

from tasks.lake.lineage import month_lineage, written_by_run
from tasks.lake.maintenance import compact, rollback_lake, rollback_month, vacuum
from tasks.lake.read import MonthFiles, lake_snapshot, month_commit, read_month, table_uris
from tasks.lake.tables import (
    PARTITION_COLUMNS,
    TABLES,
    LakeWriteConflict,
    MonthCommit,
    MonthData,
    open_table,
    table_uri,
    write_month,
)

__all__ = [
    "PARTITION_COLUMNS",
    "TABLES",
    "LakeWriteConflict",
    "MonthCommit",
    "MonthData",
    "MonthFiles",
    "compact",
    "lake_snapshot",
    "month_commit",
    "month_lineage",
    "open_table",
    "read_month",
    "rollback_lake",
    "rollback_month",
    "table_uri",
    "table_uris",
    "vacuum",
    "write_month",
    "written_by_run",
]
