"""The zone table: real CSV parsing, download caching, and the offline stand-in."""

from __future__ import annotations

import pytest

from tasks import settings, zones
from tasks.zones import ZONE_SCHEMA, load_zone_table, parse_zone_csv, synthetic_zone_table

TLC_CSV = (
    b'"LocationID","Borough","Zone","service_zone"\r\n1,"EWR","Newark Airport","EWR"\r\n'
    b'264,"Unknown","N/A","N/A"\r\n265,"N/A","Outside of NYC","N/A"\r\n'
)


def test_stand_in_has_every_id_and_the_airports():
    table = synthetic_zone_table()
    assert table.schema == ZONE_SCHEMA
    assert table["location_id"].to_pylist() == list(range(1, 266))
    by_id = dict(zip(table["location_id"].to_pylist(), table["zone"].to_pylist(), strict=True))
    assert (by_id[1], by_id[132], by_id[138]) == ("Newark Airport", "JFK Airport", "LaGuardia Airport")
    assert table["borough"].to_pylist().count("Manhattan") == 69


def test_csv_keeps_n_a_as_text():
    table = parse_zone_csv(TLC_CSV, "tlc.csv")
    assert table["zone"].to_pylist() == ["Newark Airport", "N/A", "Outside of NYC"]
    assert table["borough"].null_count == 0


def test_offline_falls_back_to_the_stand_in_and_says_so(monkeypatch):
    monkeypatch.setattr(settings, "TLC_ZONES_URL", "http://127.0.0.1:9/taxi_zone_lookup.csv")  # discard port
    table = load_zone_table()
    assert table.is_synthetic
    assert "unreachable" in table.origin
    assert not settings.ZONES_CACHE.exists()


def test_download_is_cached_and_reused(monkeypatch):
    downloads = []
    monkeypatch.setattr(zones, "_download", lambda url, timeout: downloads.append(url) or TLC_CSV)
    first, second = load_zone_table(), load_zone_table()
    assert len(downloads) == 1
    assert "downloaded" in first.origin and "cached" in second.origin
    assert first.table.equals(second.table)
    assert settings.ZONES_CACHE.read_bytes() == TLC_CSV


def test_unknown_zone_264_is_not_a_known_id():
    ids = zones.ZoneTable(parse_zone_csv(TLC_CSV, "tlc.csv"), "file").known_location_ids()
    assert ids == [1, 265]


@pytest.mark.realdata
def test_real_zone_table(real_data):
    table = load_zone_table(str(real_data / "taxi_zone_lookup.csv")).table
    assert table.num_rows == 265
    assert table["zone"].to_pylist()[263:] == ["N/A", "Outside of NYC"]
