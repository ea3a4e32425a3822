"""Exercise 6 (Dask): let each Dask worker hold at most one month at a time, however many threads it has."""

from collections.abc import Callable, Sequence
from typing import Any

import dask
from distributed import Client, Future


def map_one_month_per_worker(
    client: Client, process_month: Callable[[str], Any], months: Sequence[str]
) -> list[Future]:
    """Submit one task per month, each asking for the worker resource `MONTH` (workers declare `MONTH=1`)."""
    with dask.annotate(resources={"MONTH": 1}):
        return client.map(process_month, months, pure=False)
