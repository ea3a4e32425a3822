"""The taxi zone table: LocationID -> borough and zone name, used to validate and enrich trips.

By default the pipeline uses TLC's own table, shipped in `data/taxi_zone_lookup.csv` (public reference data, see
`data/README.md`), so a run never depends on the network for it and never invents a zone. A fresh download from TLC
is an explicit choice (`zones="tlc"`, `--zones tlc`); it is cached under `data/cache/`, written atomically, and
checked like every other zone table before use: a download that fails, or a table that does not look like TLC's,
stops the run instead of being replaced by something else.
"""

from __future__ import annotations

import io
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from prefect import task

from tasks import settings
from tasks.observe.metrics import metered
from tasks.observe.run_log import step_logger
from tasks.redact import RedactsUrls

ZONE_SCHEMA = pa.schema(
    [
        ("location_id", pa.int32()),
        ("borough", pa.string()),
        ("zone", pa.string()),
        ("service_zone", pa.string()),
    ]
)
NEWARK, JFK, LAGUARDIA = 1, 132, 138
UNKNOWN_ZONE, OUTSIDE_NYC = 264, 265
# The borough TLC gives zone 264 ("N/A"): trips there have no usable location, so `unknown_zone` rejects them.
UNKNOWN_BOROUGH = "Unknown"
# `--zones tlc`: download TLC's current table instead of using the shipped copy.
DOWNLOAD = "tlc"


class ZoneTableError(RedactsUrls, ValueError):  # its message may name a URL: without credentials
    """A zone table that cannot be used: unreadable, unreachable, or not shaped like TLC's."""


@dataclass(frozen=True)
class ZoneTable:
    """The zone table and where it came from (shown in every run's summary)."""

    table: pa.Table
    origin: str

    def known_location_ids(self) -> list[int]:
        """IDs a trip may use: every zone in the table except those in borough `Unknown` (TLC's zone 264).

        Zone 265 ("Outside of NYC", borough `N/A`) is a real destination and stays known.
        """
        is_known = pc.not_equal(self.table.column("borough"), UNKNOWN_BOROUGH)
        return self.table.column("location_id").filter(is_known).to_pylist()


def parse_zone_csv(data: bytes, origin: str) -> pa.Table:
    """Parse TLC's `LocationID,Borough,Zone,service_zone` CSV, keeping `N/A` as text (it is a real value)."""
    try:
        table = pa_csv.read_csv(io.BytesIO(data), convert_options=pa_csv.ConvertOptions(strings_can_be_null=False))
    except pa.ArrowInvalid as error:
        raise ZoneTableError(f"{origin}: not a readable CSV: {error}") from error
    renamed = {name.lower().replace("locationid", "location_id"): name for name in table.column_names}
    missing = [name for name in ZONE_SCHEMA.names if name not in renamed]
    if missing:
        raise ZoneTableError(f"{origin}: not a TLC zone table, missing column(s) {', '.join(missing)}")
    try:
        return pa.table([table.column(renamed[name]) for name in ZONE_SCHEMA.names], names=ZONE_SCHEMA.names).cast(
            ZONE_SCHEMA
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ZoneTableError(f"{origin}: not a TLC zone table: {error}") from error


def check_zone_table(table: pa.Table, origin: str) -> pa.Table:
    """Refuse a table that is not plausibly TLC's: too few or too many zones, null or repeated IDs.

    A truncated download or a stale, hand-edited cache would otherwise enrich (and validate) trips silently
    wrong: every trip in a missing zone would be quarantined as `unknown_zone`.
    """
    ids = table.column("location_id")
    low, high = settings.ZONE_COUNT_RANGE
    if not low <= table.num_rows <= high:
        raise ZoneTableError(f"{origin}: {table.num_rows} zones, expected {low}-{high} (TLC's table has 265)")
    if ids.null_count:
        raise ZoneTableError(f"{origin}: {ids.null_count} zone(s) without a LocationID")
    if pc.count_distinct(ids).as_py() != table.num_rows:
        counts = pc.value_counts(ids)
        repeated = [c["values"] for c in counts.to_pylist() if c["counts"] > 1]
        raise ZoneTableError(f"{origin}: LocationID(s) {repeated[:10]} appear more than once")
    return table


def read_zone_csv(path: Path, origin: str) -> pa.Table:
    """A zone CSV on disk, parsed and checked."""
    return check_zone_table(parse_zone_csv(path.read_bytes(), origin), origin)


def _download(url: str, timeout: float) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise ZoneTableError(f"{url}: the zone table is downloaded over HTTP(S) only")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
        return response.read()


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the whole new one, never a partial write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as temporary:
        temporary.write(data)
    os.replace(temporary.name, path)


def download_zone_table(cache: Path | None = None) -> ZoneTable:
    """TLC's current table: from the cache when it holds a valid one, else downloaded, checked, then cached."""
    cache = cache or settings.ZONES_CACHE
    if cache.exists():
        try:
            return ZoneTable(read_zone_csv(cache, str(cache)), f"TLC zone table cached at {cache}")
        except ZoneTableError as error:
            step_logger(__name__).warning("ignoring the zone cache (%s): downloading again", error)
    url = settings.TLC_ZONES_URL
    try:
        data = _download(url, settings.DOWNLOAD_TIMEOUT_SECONDS)
    except OSError as error:
        raise ZoneTableError(
            f"TLC zone table unreachable at {url} ({error}); run without --zones tlc to use the shipped copy "
            f"{settings.SHIPPED_ZONES}"
        ) from error
    table = check_zone_table(parse_zone_csv(data, url), url)
    write_atomically(cache, data)
    return ZoneTable(table, f"TLC zone table downloaded from {url}, cached at {cache}")


def load_zone_table(source: str | None = None) -> ZoneTable:
    """The zone table: the shipped TLC copy by default, `"tlc"` for a fresh download, or a CSV path."""
    if source is None:
        path = settings.SHIPPED_ZONES
        return ZoneTable(read_zone_csv(path, str(path)), f"TLC zone table shipped at {path}")
    if source == DOWNLOAD:
        return download_zone_table()
    path = Path(source)
    if not path.is_file():
        raise ZoneTableError(f"{source}: no such zone table file (or pass {DOWNLOAD!r} to download TLC's)")
    return ZoneTable(read_zone_csv(path, source), f"file {source}")


# The step as a task (tasks/__init__.py): a flow loads the table once, and every month reuses it; metered like
# every task run (tasks/observe/metrics.py).
load_zones = metered(task(name="load-zones", retries=0)(load_zone_table))
