"""`python -m servers start prefect|s3|dask` and `python -m servers stop [name ...]` (used by the Makefile)."""

from __future__ import annotations

import argparse
import os
import sys

from servers import start_dask, start_prefect, start_s3, start_worker, stop, write_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a server in the background")
    start.add_argument("name", choices=("prefect", "s3", "dask", "worker"))
    finish = commands.add_parser("stop", help="stop servers this project started (all by default)")
    finish.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "stop":
        print(f"stopped: {', '.join(stop(args.names)) or 'nothing was running'}")
        return 0
    if args.name in ("dask", "worker"):
        api_url = os.environ.get("PREFECT_API_URL")
        if not api_url:
            print(
                f"error: a {args.name} needs PREFECT_API_URL (a Prefect server to report to; without one, Dask workers"
                " would each start a temporary server); run `make server` and `source .run/prefect.env` first",
                file=sys.stderr,
            )
            return 2
        variables = start_dask(api_url) if args.name == "dask" else start_worker(api_url)
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
