"""The test session itself: no test may depend on being online."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from tests.conftest import OutboundNetworkBlocked


def test_outbound_connections_are_refused():
    """192.0.2.1 is a documentation address (TEST-NET-1): a literal IP, so no DNS answer is needed to try it."""
    with pytest.raises(OutboundNetworkBlocked), socket.create_connection(("192.0.2.1", 80), timeout=2):
        pass
    with pytest.raises(urllib.error.URLError) as failure:
        urllib.request.urlopen("http://192.0.2.1/trip-data/yellow_tripdata_2025-01.parquet", timeout=2)
    assert isinstance(failure.value.reason, OutboundNetworkBlocked)


def test_loopback_connections_still_work(http_root):
    folder, base_url = http_root
    (folder / "hello.txt").write_text("hello")
    with urllib.request.urlopen(f"{base_url}/hello.txt", timeout=5) as response:
        assert response.read() == b"hello"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
