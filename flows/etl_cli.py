"""`python -m flows.etl`'s command line: arguments, one `taxi_etl` run per service, a clean exit on SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect import Flow
from prefect.exceptions import MissingResult
from prefect.states import State

from tasks import settings
from tasks.pipeline.report import MonthSummary, RunSummary, render_markdown
from tasks.redact import SecretUrl


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.etl",
        description="Run the NYC taxi ETL. With no arguments: the committed synthetic sample, yellow and green.",
    )
    parser.add_argument(
        "--service",
        action="append",
        choices=settings.SERVICES,
        help="yellow or green; repeat for both (default: both for the sample, else from the file name, else yellow)",
    )
    parser.add_argument(
        "--month",
        action="append",
        dest="months",
        metavar="YYYY-MM",
        help="YYYY-MM, or latest (the newest month TLC has published); repeatable (default: the sample's months)",
    )
    parser.add_argument(
        "--source",
        metavar="PATH|URL",
        help="a local path, http(s):// or s3:// URL of a parquet/CSV(.gz) file, or a template with "
        "{service} and {month}; a presigned URL is shown and stored redacted (default: $TAXI_SOURCE_URL, else "
        "TLC's official file for each month)",
    )
    parser.add_argument(
        "--output",
        metavar="DIR|s3://...",
        help="output root (default: $TAXI_OUTPUT_ROOT or ./output; ./output/sample for the sample)",
    )
    parser.add_argument("--engine", choices=("polars", "pandas"), default="polars", help="dataframe engine")
    parser.add_argument(
        "--zones",
        metavar="CSV|tlc",
        help="zone table CSV, or tlc to download TLC's current one (default: TLC's table shipped in data/)",
    )
    parser.add_argument(
        "--runner",
        choices=("threads", "dask"),
        default="threads",
        help="where the months run: threads in this process ($TAXI_MONTH_THREADS at once, default 2), or dask, "
        "a LocalCluster started for the run (default: threads)",
    )
    parser.add_argument(
        "--dask-address",
        metavar="tcp://HOST:PORT",
        default=settings.dask_address(),
        help="an existing Dask scheduler to run the months on, whatever --runner says; its workers need "
        "PREFECT_API_URL (default: $TAXI_DASK_ADDRESS, which `make dask` writes to .run/dask.env; set it "
        "empty to run without it)",
    )
    parser.add_argument(
        "--allow-high-quarantine",
        action="store_true",
        help="write a month even if more of its rows are quarantined than $TAXI_MAX_QUARANTINE_SHARE allows (0.5)",
    )
    return parser.parse_args(argv)


def default_services(args: argparse.Namespace) -> list[str]:
    """Both services for the sample; otherwise the one named in the source's file name, or yellow."""
    if args.service:
        return args.service
    source = args.source or settings.source_url()
    if not args.months and not source:
        return list(settings.SERVICES)
    name = (source or "").split("?", 1)[0].rsplit("/", 1)[-1]
    return [next((s for s in settings.SERVICES if s in name), "yellow")]


@contextmanager
def sigterm_exits() -> Iterator[None]:
    """Within the block, SIGTERM (`kill`, `docker stop`, a supervisor) ends the process as Ctrl-C would: by an
    exception, so that context managers and exit hooks run, among them the one that stops the temporary Prefect
    server a run starts without `PREFECT_API_URL` (Python's default, dying at once, orphans it still listening).

    Prefect's flow engine catches SIGTERM during a run, marks the run Crashed, then sends the signal again to the
    handler that was there before it: this one, which raises `SystemExit(143)`, 128 + SIGTERM as a shell reports it.
    """

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(flow_on: Callable[..., Flow[..., dict | State]], argv: list[str] | None = None) -> int:
    """Run `flow_on(runner, dask_address)` (`flows.etl.taxi_etl_on`) once per service the arguments ask for."""
    args = parse_args(argv)
    with sigterm_exits():
        return run_services(flow_on(args.runner, args.dask_address), args)


def run_services(taxi_etl: Flow[..., dict | State], args: argparse.Namespace) -> int:
    """`taxi_etl` for each service; prints each summary, stops at the first failure."""
    for service in default_services(args):
        state = taxi_etl(
            service=service,
            months=args.months,
            source=SecretUrl(args.source) if args.source else None,  # stored in the run's parameters redacted
            output=args.output,
            engine=args.engine,
            zones=args.zones,
            allow_high_quarantine=args.allow_high_quarantine,
            return_state=True,
        )
        if not state.is_completed():
            print(f"error: {state.message}", file=sys.stderr)
            return 1
        try:
            summary = state.result()
        except MissingResult:  # completed, but its state came back from a busy server without the value
            print(f"{service}: completed; its summary is the run's artifact taxi-etl-{service}")
            continue
        print(render_markdown(RunSummary(**{**summary, "months": [MonthSummary(**m) for m in summary["months"]]})))
    return 0
