"""The taxi zone table: LocationID -> borough and zone name, used to validate and enrich trips.

The real table is downloaded once from TLC and cached under `data/cache/`. Without a network (as on CI), a
synthetic stand-in with the same IDs, the same airports and the real number of zones per borough is used,
and the run says so: borough figures are then synthetic.
"""

from __future__ import annotations

import io
import logging
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from prefect import task

from tasks import settings

logger = logging.getLogger(__name__)

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
# How many of the IDs 2-263 lie in each borough in TLC's table; the stand-in keeps these proportions.
ZONES_PER_BOROUGH = {"Manhattan": 69, "Queens": 69, "Brooklyn": 61, "Bronx": 43, "Staten Island": 20}


@dataclass(frozen=True)
class ZoneTable:
    """The zone table and where it came from (shown in every run's summary)."""

    table: pa.Table
    origin: str

    @property
    def is_synthetic(self) -> bool:
        return self.origin.startswith("synthetic")

    def known_location_ids(self) -> list[int]:
        """IDs a trip may use: every zone in the table except the one TLC marks as borough `Unknown`."""
        ids = self.table.column("location_id").to_pylist()
        boroughs = self.table.column("borough").to_pylist()
        return [i for i, borough in zip(ids, boroughs, strict=True) if borough != "Unknown"]


def synthetic_zone_table() -> pa.Table:
    """A deterministic stand-in for TLC's 265 zones: real airport IDs, real borough sizes, made-up names."""
    rng = np.random.default_rng(265)
    ordinary_ids = [i for i in range(2, UNKNOWN_ZONE) if i not in (JFK, LAGUARDIA)]
    boroughs = [b for b, n in ZONES_PER_BOROUGH.items() for _ in range(n - 2 * (b == "Queens"))]
    rows = {i: (b, f"Synthetic zone {i:03d}") for i, b in zip(ordinary_ids, rng.permutation(boroughs), strict=True)}
    rows |= {
        NEWARK: ("EWR", "Newark Airport"),
        JFK: ("Queens", "JFK Airport"),
        LAGUARDIA: ("Queens", "LaGuardia Airport"),
        UNKNOWN_ZONE: ("Unknown", "N/A"),
        OUTSIDE_NYC: ("N/A", "Outside of NYC"),
    }
    ids = sorted(rows)
    service_zone = {"EWR": "EWR", "Manhattan": "Yellow Zone", "Unknown": "N/A", "N/A": "N/A"}
    return pa.table(
        {
            "location_id": pa.array(ids, pa.int32()),
            "borough": [rows[i][0] for i in ids],
            "zone": [rows[i][1] for i in ids],
            "service_zone": [
                "Airports" if i in (JFK, LAGUARDIA) else service_zone.get(rows[i][0], "Boro Zone") for i in ids
            ],
        },
        schema=ZONE_SCHEMA,
    )


def parse_zone_csv(data: bytes, origin: str) -> pa.Table:
    """Parse TLC's `LocationID,Borough,Zone,service_zone` CSV, keeping `N/A` as text (it is a real value)."""
    table = pa_csv.read_csv(io.BytesIO(data), convert_options=pa_csv.ConvertOptions(strings_can_be_null=False))
    renamed = {name.lower().replace("locationid", "location_id"): name for name in table.column_names}
    missing = [name for name in ZONE_SCHEMA.names if name not in renamed]
    if missing:
        raise ValueError(f"{origin}: not a TLC zone table, missing column(s) {', '.join(missing)}")
    return pa.table([table.column(renamed[name]) for name in ZONE_SCHEMA.names], names=ZONE_SCHEMA.names).cast(
        ZONE_SCHEMA
    )


def _download(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def load_zone_table(source: str | None = None, cache: Path | None = None) -> ZoneTable:
    """The zone table from `source` if given; else the cached TLC download; else TLC; else the stand-in."""
    if source:
        return ZoneTable(parse_zone_csv(Path(source).read_bytes(), source), f"file {source}")
    cache = cache or settings.ZONES_CACHE
    if cache.exists():
        return ZoneTable(parse_zone_csv(cache.read_bytes(), str(cache)), f"TLC zone table cached at {cache}")
    try:
        data = _download(settings.TLC_ZONES_URL, settings.DOWNLOAD_TIMEOUT_SECONDS)
        table = parse_zone_csv(data, settings.TLC_ZONES_URL)
    except (OSError, ValueError) as error:
        logger.warning("TLC zone table unreachable (%s): using the synthetic stand-in", error)
        return ZoneTable(synthetic_zone_table(), f"synthetic stand-in (TLC zone table unreachable: {error})")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(data)
    return ZoneTable(table, f"TLC zone table downloaded from {settings.TLC_ZONES_URL}, cached at {cache}")


@task(name="load-zones", retries=0)
def load_zones(source: str | None = None) -> ZoneTable:
    """Load the zone table once per flow run; every month reuses it."""
    return load_zone_table(source)
