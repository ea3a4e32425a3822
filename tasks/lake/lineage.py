"""Who wrote a month, from what: the lineage each month's commits carry in their Delta commit metadata.

The writer passes it in (`tasks.pipeline.month.month_lineage_record` builds it inside a Prefect run): the flow run id
and
deployment, the source URI without credentials and its fingerprint, the rows in, clean and quarantined, and the
output version (code, rules, zones). `tasks/lake/tables.py` adds the month, the write id and, on trips, the
quarantine version it pairs with. `DeltaTable(...).history()` shows the same under the key `taxi`.
"""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

from tasks.lake.read import month_commit, paired_quarantine
from tasks.lake.tables import month_key, open_table, run_number
from tasks.months import Month


def month_lineage(root: str, service: str, month: Month) -> dict | None:
    """The lineage of the month as the lake serves it now (its latest trips commit), with `table_version`, the
    trips table version of that commit, and its `timestamp` (ms); None if the month was never written."""
    trips = open_table(root, "trips")
    return month_commit(trips, service, month) if trips is not None else None


def written_by_run(root: str, service: str, month: Month, flow_run_id: str | None) -> dict[str, int] | None:
    """If the month as the lake serves it now was written by this flow run (a re-executed month then skips its
    write): its rows and versions, `{"rows_clean", "rows_quarantined", "trips_version", "quarantine_version"}`;
    else None. Outside a flow run (`flow_run_id` None) nothing counts as already written.

    Read from the tables' state (the run's mark, the files' row counts), not from the log's history."""
    trips = open_table(root, "trips")
    key = month_key(service, month)
    if flow_run_id is None or trips is None or trips.transaction_version(f"{key}/run") != run_number(flow_run_id):
        return None
    quarantine = paired_quarantine(root, trips, service, month)
    if quarantine is None:
        return None
    return {
        "rows_clean": _month_rows(trips, service, month),
        "rows_quarantined": _month_rows(quarantine, service, month),
        "trips_version": trips.version(),
        "quarantine_version": quarantine.version(),
    }


def _month_rows(table: DeltaTable, service: str, month: Month) -> int:
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    key = (service, str(month.year), str(month.month))
    return sum(
        a["num_records"]
        for a in actions
        if (a["partition.service"], str(a["partition.year"]), str(a["partition.month"])) == key
    )
