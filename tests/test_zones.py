"""The zone table: TLC's shipped copy by default, an explicit download with a checked, atomic cache, and no stand-in."""

from __future__ import annotations

import pytest

from tasks import settings
from tasks.pipeline import zones
from tasks.pipeline.zones import (
    ZONE_SCHEMA,
    ZoneTableError,
    check_zone_table,
    load_zone_table,
    parse_zone_csv,
    write_atomically,
)

SHIPPED_CSV = settings.SHIPPED_ZONES.read_bytes()
UNREACHABLE_URL = "http://127.0.0.1:9/taxi_zone_lookup.csv"  # the discard port: nothing answers


def test_default_is_tlcs_table_shipped_in_data():
    table = load_zone_table()
    assert table.origin.startswith("TLC zone table shipped")
    assert table.table.schema == ZONE_SCHEMA
    assert table.table["location_id"].to_pylist() == list(range(1, 266))
    by_id = dict(zip(table.table["location_id"].to_pylist(), table.table["zone"].to_pylist(), strict=True))
    assert (by_id[1], by_id[132], by_id[138]) == ("Newark Airport", "JFK Airport", "LaGuardia Airport")
    assert not any(name.startswith("Synthetic") for name in by_id.values())


def test_csv_keeps_n_a_as_text():
    table = load_zone_table().table
    assert table["zone"].to_pylist()[263:] == ["N/A", "Outside of NYC"]
    assert table["borough"].to_pylist()[263:] == ["Unknown", "N/A"]
    assert table["borough"].null_count == 0


def test_unknown_borough_is_not_known_but_outside_nyc_is():
    ids = load_zone_table().known_location_ids()
    assert 264 not in ids and 265 in ids and len(ids) == 264


def test_failed_download_is_an_error_not_a_stand_in(monkeypatch):
    monkeypatch.setattr(settings, "TLC_ZONES_URL", UNREACHABLE_URL)
    with pytest.raises(ZoneTableError, match=r"unreachable.*shipped copy"):
        load_zone_table("tlc")
    assert not settings.ZONES_CACHE.exists()


def test_download_is_checked_cached_and_reused(monkeypatch):
    downloads = []
    monkeypatch.setattr(zones, "_download", lambda url, timeout: downloads.append(url) or SHIPPED_CSV)
    first, second = load_zone_table("tlc"), load_zone_table("tlc")
    assert len(downloads) == 1
    assert "downloaded" in first.origin and "cached" in second.origin
    assert first.table.equals(second.table)
    assert settings.ZONES_CACHE.read_bytes() == SHIPPED_CSV
    assert [p.name for p in settings.ZONES_CACHE.parent.iterdir()] == [settings.ZONES_CACHE.name]  # no temp left


def test_truncated_download_is_refused_and_not_cached(monkeypatch):
    truncated = b"\r\n".join(SHIPPED_CSV.split(b"\r\n")[:40])
    monkeypatch.setattr(zones, "_download", lambda url, timeout: truncated)
    with pytest.raises(ZoneTableError, match="39 zones"):
        load_zone_table("tlc")
    assert not settings.ZONES_CACHE.exists()


def test_a_corrupt_cache_is_replaced_by_a_fresh_download(monkeypatch):
    settings.ZONES_CACHE.write_bytes(SHIPPED_CSV[:500])
    monkeypatch.setattr(zones, "_download", lambda url, timeout: SHIPPED_CSV)
    table = load_zone_table("tlc")
    assert "downloaded" in table.origin and table.table.num_rows == 265
    assert settings.ZONES_CACHE.read_bytes() == SHIPPED_CSV


def test_a_corrupt_cache_with_no_network_is_an_error(monkeypatch):
    settings.ZONES_CACHE.write_bytes(b"LocationID,Borough\n1,EWR\n")
    monkeypatch.setattr(settings, "TLC_ZONES_URL", UNREACHABLE_URL)
    with pytest.raises(ZoneTableError, match="unreachable"):
        load_zone_table("tlc")


def test_repeated_ids_are_refused():
    lines = SHIPPED_CSV.split(b"\r\n")
    doubled = b"\r\n".join([*lines[:-1], lines[5], lines[-1]])
    with pytest.raises(ZoneTableError, match=r"\[5\] appear more than once"):
        check_zone_table(parse_zone_csv(doubled, "doubled.csv"), "doubled.csv")


def test_missing_columns_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(ZoneTableError, match="missing column"):
        parse_zone_csv(b"LocationID,Borough\n1,EWR\n", "short.csv")
    with pytest.raises(ZoneTableError, match="no such zone table"):
        load_zone_table(str(tmp_path / "absent.csv"))


def test_write_atomically_replaces_the_whole_file(tmp_path):
    target = tmp_path / "cache" / "zones.csv"
    write_atomically(target, b"old")
    write_atomically(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in target.parent.iterdir()] == ["zones.csv"]


@pytest.mark.realdata
def test_shipped_table_is_tlcs_file(real_data):
    """The shipped copy is byte for byte the TLC table in the shared real-data folder."""
    assert (real_data / "taxi_zone_lookup.csv").read_bytes() == SHIPPED_CSV
