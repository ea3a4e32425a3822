"""Where a data step's log lines go: to the Prefect run that called it, or to plain Python logging outside a run.

Prefect sends only its run loggers' records to the API (`get_run_logger`); a module logger's lines appear in the
terminal of whatever process ran the step (a worker, a Dask worker, a container) and never on the run's log page.
The data steps are plain functions, called inside a flow or task run (where their warnings belong on that run's
page) and outside one (tests, scripts, the benchmark), so they ask for `step_logger(__name__)` at the moment they
log instead of holding a module logger.

Prefect is not imported here: a process that never imported it (a script writing months with `tasks/lake`)
has no run to log to and stays fast.
"""

from __future__ import annotations

import logging
import sys


def step_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """The current flow or task run's logger when there is one (its lines are stored with the run, shown in the
    UI), else the plain logger `name`."""
    if "prefect" in sys.modules:  # no Prefect imported means no run to log to
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        try:
            return get_run_logger()
        except MissingContextError:
            pass
    # Outside a run: the ordinary module logger, configured by whoever runs the script (Prefect's `get_logger`
    # would put the line under the `prefect.` namespace, which it is not).
    return logging.getLogger(name)
