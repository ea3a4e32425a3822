"""`lake-maintenance` and `lake-rollback`: keep the lake's Delta tables small and a bad month undoable.

- `lake_maintenance`: compact each table's small files (`optimize.compact`), then `vacuum` the files no version
  newer than the retention needs (default a week: `TAXI_VACUUM_RETENTION_HOURS`), which also removes what a killed
  writer left behind. Deployed as `lake-maintenance` (weekly).
- `lake_rollback`: roll the whole lake back to an earlier trips table version (Delta's `restore` of both tables,
  quarantine to the version paired with it; months written later leave the lake), or, given a service and a
  month, write that one month again as it was then, with its quarantine of the same run. Find the version with
  `DeltaTable(...).history()` or `tasks.lake.month_lineage`.

Run it:

    python -m flows.maintenance vacuum --output ./output --retention-hours 168
    python -m flows.maintenance rollback --output ./output --service yellow --month 2025-01 --version 3
    python -m flows.maintenance rollback --output ./output --version 3      # both tables, as at trips version 3

Course page: `docs/pipeline.md` (Load).
"""

from __future__ import annotations

import argparse
import json
import sys

from prefect import flow, get_run_logger

from tasks import settings
from tasks.lake import compact, rollback_lake, rollback_month, vacuum
from tasks.months import Month


@flow(name="lake-maintenance")
def lake_maintenance(output: str | None = None, retention_hours: int | None = None, compaction: bool = True) -> dict:
    """Compact (unless `compaction` is false), then vacuum with `retention_hours` (default the setting)."""
    root = output or settings.output_root()
    hours = settings.vacuum_retention_hours() if retention_hours is None else retention_hours
    done = {"output": root, "retention_hours": hours}
    if compaction:
        done["compacted"] = {name: metrics["numFilesRemoved"] for name, metrics in compact(root).items()}
    done["vacuumed"] = vacuum(root, hours)
    get_run_logger().info("lake maintenance of %s: %s", root, done)
    return done


@flow(name="lake-rollback")
def lake_rollback(
    version: int | None = None, output: str | None = None, service: str | None = None, month: str | None = None
) -> list[str]:
    """Roll `service` `month` back to trips table `version`, or the whole lake (both tables restored) when no month
    is given; returns the months rolled back (for the lake: the months it then holds).

    `version` has no default worth guessing (the deployment asks for it at each run): without it nothing is written
    and the run fails saying so."""
    if version is None:
        raise ValueError("say which trips table version to roll back to (see DeltaTable(...).history())")
    root = output or settings.output_root()
    if service and not month:
        raise ValueError("a service alone is not rolled back: give a month too, or neither for the whole lake")
    if month:
        if not service:
            raise ValueError("a month's rollback needs its service")
        rollback_month(root, service, Month.parse(month), version)
        rolled = [f"{service} {month}"]
    else:
        rolled = rollback_lake(root, version)
    get_run_logger().info("rolled back to trips version %d: %s", version, ", ".join(rolled))
    return rolled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.maintenance", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cleaning = commands.add_parser("vacuum", help="compact, then delete files older versions no longer need")
    cleaning.add_argument("--output", help="the lake's root (default: $TAXI_OUTPUT_ROOT or ./output)")
    cleaning.add_argument("--retention-hours", type=int, help="keep versions this recent (default: 168, a week)")
    cleaning.add_argument("--no-compaction", action="store_true", help="vacuum only")
    rolling = commands.add_parser("rollback", help="roll the lake, or one month, back to an earlier trips version")
    rolling.add_argument("--output", help="the lake's root (default: $TAXI_OUTPUT_ROOT or ./output)")
    rolling.add_argument("--version", type=int, required=True, help="the trips table version to go back to")
    rolling.add_argument("--service", choices=settings.SERVICES)
    rolling.add_argument("--month", metavar="YYYY-MM", help="one month (default: the whole lake, both tables)")
    args = parser.parse_args(argv)
    result: dict | list
    if args.command == "vacuum":
        result = lake_maintenance(args.output, args.retention_hours, not args.no_compaction)
    else:
        result = lake_rollback(args.version, args.output, args.service, args.month)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
