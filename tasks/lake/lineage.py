"""Who wrote a month, from what: the lineage each month's commits carry in their Delta commit metadata.

The writer passes it in (`tasks.pipeline.month_lineage_record` builds it inside a Prefect run): the flow run id and
deployment, the source URI without credentials and its fingerprint, the rows in, clean and quarantined, and the
output version (code, rules, zones). `tasks/lake/tables.py` adds the month, the write id and, on trips, the
quarantine version it pairs with. `DeltaTable(...).history()` shows the same under the key `taxi`.
"""

from __future__ import annotations

from tasks.lake.read import month_commit
from tasks.lake.tables import open_table
from tasks.months import Month


def month_lineage(root: str, service: str, month: Month) -> dict | None:
    """The lineage of the month as the lake serves it now (its latest trips commit), with `table_version`, the
    trips table version of that commit, and its `timestamp` (ms); None if the month was never written."""
    trips = open_table(root, "trips")
    return month_commit(trips, service, month) if trips is not None else None


def written_by_run(root: str, service: str, month: Month, flow_run_id: str | None) -> dict | None:
    """The month's lineage if its latest commit is this flow run's (a re-executed month then skips its write),
    else None. Outside a flow run (`flow_run_id` None) nothing counts as already written."""
    if flow_run_id is None:
        return None
    lineage = month_lineage(root, service, month)
    return lineage if lineage is not None and lineage.get("flow_run_id") == flow_run_id else None
