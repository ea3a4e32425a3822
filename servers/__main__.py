"""`python -m servers start prefect|s3|dask|worker|monitor`, `deploy` and `stop [name ...]` (used by the Makefile)."""

from __future__ import annotations

import argparse
import os
import sys

import servers
from servers import deploy_all, start_dask, start_prefect, start_s3, start_worker, stop, write_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a server in the background")
    start.add_argument("name", choices=("prefect", "s3", "dask", "worker", "monitor"))
    finish = commands.add_parser("stop", help="stop servers this project started (all by default)")
    finish.add_argument("names", nargs="*")
    commands.add_parser("deploy", help="create the work pool if missing, then deploy every flow in prefect.yaml")
    args = parser.parse_args(argv)
    if args.command == "stop":
        print(f"stopped: {', '.join(stop(args.names)) or 'nothing was running'}")
        return 0
    if args.command == "deploy":
        return deploy_all()
    if args.name in ("dask", "worker"):
        api_url = os.environ.get("PREFECT_API_URL")
        if not api_url:
            print(
                f"error: a {args.name} needs PREFECT_API_URL (a Prefect server to report to; without one, Dask workers"
                " would each start a temporary server); run `make server` and `source .run/prefect.env` first",
                file=sys.stderr,
            )
            return 2
        if args.name == "worker":
            start_worker(api_url)
            print(f"worker started for work pool {servers.WORK_POOL} (log: .run/worker.log); stop it with make stop")
            return 0
        variables = start_dask(api_url)
    elif args.name == "monitor":
        from servers.monitor import start_monitor

        try:
            variables = start_monitor()
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    else:
        variables = {"prefect": start_prefect, "s3": start_s3}[args.name]()
    path = write_env(args.name, variables)
    print(f"{args.name} started: " + " ".join(f"{k}={v}" for k, v in variables.items() if "SECRET" not in k))
    print(
        f"to use it in your shell: source {path.relative_to(os.getcwd()) if path.is_relative_to(os.getcwd()) else path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
