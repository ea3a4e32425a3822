"""extract: every supported location and format, and a clear error for every kind of bad file."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from data.generate import write_month
from tasks import settings
from tasks.months import Month
from tasks.pipeline.extract import SourceError, read_trip_file, source_fingerprint
from tasks.retries import is_transient
from tests.factories import copies_of, open_month

SAMPLE = settings.SAMPLE_DIR / "green_tripdata_2025-01.parquet"


@pytest.fixture(scope="module")
def sample_table():
    return pq.read_table(SAMPLE)


def test_parquet_csv_and_gzip_csv_read_the_same_rows(tmp_path, sample_table):
    csv_path = tmp_path / "trips.csv"
    pa_csv.write_csv(sample_table, csv_path)
    gz_path = tmp_path / "trips.csv.gz"
    gz_path.write_bytes(gzip.compress(csv_path.read_bytes()))
    oddly_named = tmp_path / "download"  # format is sniffed from the bytes, not the name
    shutil.copy(SAMPLE, oddly_named)
    assert read_trip_file(str(SAMPLE)).num_rows == sample_table.num_rows
    assert read_trip_file(str(oddly_named)).num_rows == sample_table.num_rows
    assert read_trip_file(str(csv_path)).num_rows == sample_table.num_rows
    assert read_trip_file(str(gz_path)).num_rows == sample_table.num_rows


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (SAMPLE.read_bytes()[: len(SAMPLE.read_bytes()) // 2], "corrupt or truncated parquet"),
        (b"\x1f\x8b\x08\x00broken", "corrupt or truncated gzip"),
        (b"VendorID,total_amount\n", "holds no trip rows"),
        (b"\x00\x01\x02binary junk", "neither parquet nor CSV"),
    ],
    ids=["empty", "truncated-parquet", "corrupt-gzip", "header-only-csv", "binary"],
)
def test_bad_files_give_a_clear_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad_file.parquet"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as error:
        read_trip_file(str(path))
    assert str(path) in str(error.value)


def test_missing_local_file(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_trip_file(str(tmp_path / "nope.parquet"))


def test_http_source_and_404(http_root):
    folder, base_url = http_root
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    assert read_trip_file(f"{base_url}/{SAMPLE.name}").num_rows == pq.read_metadata(SAMPLE).num_rows
    with pytest.raises(SourceError, match=r"missing\.parquet: HTTP 404") as error:
        read_trip_file(f"{base_url}/missing.parquet")
    assert not is_transient(error.value)  # a 404 is final


def test_s3_source(s3_bucket):
    import s3fs

    s3fs.S3FileSystem(client_kwargs={"endpoint_url": settings.s3_endpoint_url()}).put(
        str(SAMPLE), f"{s3_bucket}/raw/{SAMPLE.name}"
    )
    assert read_trip_file(f"s3://{s3_bucket}/raw/{SAMPLE.name}").num_rows == pq.read_metadata(SAMPLE).num_rows
    with pytest.raises(SourceError, match="no such file"):
        read_trip_file(f"s3://{s3_bucket}/raw/absent.parquet")


# --- sources that are not a local parquet file are staged on disk, then streamed -----------------------------------

# The child process of the memory test: stream one month's normalized plan from `argv[1]`, print its own peak RSS.
STREAM_AND_MEASURE = """
import sys
import polars as pl
from tasks.pipeline.engines import polars_month
from tasks.pipeline.extract import parquet_to_scan
with parquet_to_scan(sys.argv[1]) as (location, rows):
    frame = polars_month.read(location, "yellow", sys.argv[1]).frame()
    totals = frame.select(pl.len(), pl.col("total_amount").sum()).collect(engine="streaming")
assert totals.item(0, 0) == rows
from tasks.observe.peak_memory import peak_rss_bytes
print(peak_rss_bytes())
"""


@pytest.fixture(scope="module")
def large_month(http_root) -> tuple[Path, str]:
    """A generated yellow month of a million rows (about 23 MB of parquet, 150 MB as a table), on disk and served
    over loopback http: `(path, url)`."""
    folder, base_url = http_root
    path = write_month("yellow", Month(2025, 1), 1_000_000, folder / "large", progress=False)
    return path, f"{base_url}/large/{path.name}"


def peak_rss_streaming(source: str) -> int:
    """Peak resident memory (VmHWM, the child's own) of a fresh process streaming the month at `source`."""
    done = subprocess.run(
        [sys.executable, "-c", STREAM_AND_MEASURE, source],
        cwd=settings.PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1])


def test_an_http_month_streams_in_about_the_memory_of_a_local_one(large_month):
    """Downloaded to disk in chunks, then scanned like a local file: the month's 150 MB table is never held."""
    path, url = large_month
    in_memory = pq.read_table(path).nbytes
    local, over_http = peak_rss_streaming(str(path)), peak_rss_streaming(url)
    assert over_http - local < in_memory / 4, f"local {local / 2**20:.0f} MiB, http {over_http / 2**20:.0f} MiB"


# The child of the batch test: read a file's batches to the end, print its resident memory before and its peak.
READ_BATCHES_AND_MEASURE = """
import sys
from tasks.observe.peak_memory import peak_rss_bytes
from tasks.pipeline.engines.polars_batches import batches
from tests.resident_memory import resident_bytes
with batches(sys.argv[1], 50_000) as each:
    before = resident_bytes()
    rows = sum(batch.num_rows for batch in each)
    print(rows, before, peak_rss_bytes())
"""


def held_reading_batches(path: Path, location: str | None = None) -> int:
    """Peak bytes a fresh process adds while reading the file at `path` (or its copy at `location`, e.g. on S3)
    batch by batch to its end."""
    done = subprocess.run(
        [sys.executable, "-c", READ_BATCHES_AND_MEASURE, location or str(path)],
        cwd=settings.PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows, before, after = map(int, done.stdout.split())
    assert rows == pq.read_metadata(path).num_rows
    return after - before


def test_reading_a_months_batches_to_the_end_holds_a_batch_not_the_file(large_month, tmp_path):
    """pyarrow pre-buffers a file's column chunks and keeps them while it reads on, so what a reader held would
    grow with the file; read without pre-buffering, a file 4 times larger costs about the same. (Two copies against
    eight: from one copy to two, Arrow's allocator still warms up by some 15 MiB, whatever the reader.)"""
    small, large = copies_of(large_month[0], 2, tmp_path), copies_of(large_month[0], 8, tmp_path)
    grown = held_reading_batches(large) - held_reading_batches(small)
    more = large.stat().st_size - small.stat().st_size
    assert grown < more / 4, f"{grown / 2**20:.0f} MiB more held for a file {more / 2**20:.0f} MiB larger"


def test_reading_an_s3_months_batches_holds_a_batch_not_the_file(large_month, tmp_path, s3_bucket):
    """A parquet month on S3 is read where it is, through s3fs's file and its read-ahead buffer: a file 4 times
    larger costs about the same there too (the child reaches the moto server through the environment)."""
    import s3fs

    filesystem = s3fs.S3FileSystem(**settings.storage_options("s3://"))
    held, size = {}, {}
    for copies in (2, 8):
        path = copies_of(large_month[0], copies, tmp_path)
        filesystem.put(str(path), f"{s3_bucket}/{path.name}")
        location = f"s3://{s3_bucket}/{path.name}"  # the lesser of two reads of each: less noise
        held[copies] = min(held_reading_batches(path, location) for _ in range(2))
        size[copies] = path.stat().st_size
    grown, more = held[8] - held[2], size[8] - size[2]
    assert grown < more / 4, f"{grown / 2**20:.0f} MiB more held for a file {more / 2**20:.0f} MiB larger"


def test_an_http_month_is_scanned_from_a_file_on_disk(http_root, tmp_path, monkeypatch):
    folder, base_url = http_root
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with open_month(f"{base_url}/{SAMPLE.name}", "green") as (frame, rows):
        plan = frame.explain()
        assert "parquet scan" in plan.lower() and str(tmp_path) in plan
        assert frame.select(pl.len()).collect().item() == rows == pq.read_metadata(SAMPLE).num_rows
    assert list(tmp_path.iterdir()) == []  # the staged file goes when the month's block ends


@pytest.mark.parametrize("compress", [False, True], ids=["csv", "csv.gz"])
def test_a_csv_month_is_converted_on_disk_and_removed_when_the_month_ends(tmp_path, sample_table, compress):
    text = tmp_path / "trips.csv"
    pa_csv.write_csv(sample_table, text)
    source = tmp_path / "trips.csv.gz" if compress else text
    if compress:
        source.write_bytes(gzip.compress(text.read_bytes()))
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(staging))
        with open_month(str(source), "green") as (frame, rows):
            (staged,) = staging.rglob("*.parquet")
            assert staged.parent.name.startswith(
                f"taxi-source-{os.getpid()}-"
            )  # its owner named: tasks.pipeline.staging
            assert frame.select(pl.len()).collect(engine="streaming").item() == rows == sample_table.num_rows
        assert list(staging.iterdir()) == []
        with pytest.raises(RuntimeError, match="the month failed"), open_month(str(source), "green"):
            raise RuntimeError("the month failed")
        assert list(staging.iterdir()) == []


class CutShortHandler(BaseHTTPRequestHandler):
    """Promises a megabyte and sends ten bytes of parquet before closing: a download cut off half way."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(2**20))
        self.end_headers()
        self.wfile.write(b"PAR1" + b"\x00" * 6)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format, *args):
        pass


def test_a_download_cut_short_is_transient_and_leaves_no_file(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), CutShortHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        with pytest.raises(SourceError, match="cannot be fetched") as error:
            read_trip_file(f"http://127.0.0.1:{server.server_address[1]}/green_tripdata_2025-01.parquet")
    finally:
        server.shutdown()
        server.server_close()
    assert is_transient(error.value)
    assert list(tmp_path.iterdir()) == []


def test_an_http_fingerprint_changes_with_the_file(http_root):
    """A plain web server sends Last-Modified and Content-Length, no ETag: either must show a new upload."""
    folder, base_url = http_root
    path = folder / "fingerprinted.parquet"
    shutil.copy(SAMPLE, path)
    before = source_fingerprint(f"{base_url}/{path.name}")
    assert before["size"] == path.stat().st_size and before["version"]
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 3600))
    assert source_fingerprint(f"{base_url}/{path.name}")["version"] != before["version"]


def test_a_csv_column_empty_in_its_first_blocks_reads_like_parquet(tmp_path):
    """2019's CSVs leave `congestion_surcharge` empty for many rows and write codes as `1` or `1.0`: a reader that
    guessed types from the first block would fail further down. Several 4 MiB blocks of rows here."""
    header = "tpep_pickup_datetime,tpep_dropoff_datetime,trip_distance,PULocationID,DOLocationID,total_amount,"
    header += "RatecodeID,congestion_surcharge\n"
    early = "2019-01-15 03:36:12,2019-01-15 03:42:19,1.0,230,48,9.75,1,\n" * 150_000
    late = "2019-01-15 03:36:12,2019-01-15 03:42:19,1.0,230,48,9.75,1.0,2.5\n" * 150_000
    path = tmp_path / "trips.csv"
    path.write_text(header + early + late)
    assert path.stat().st_size > 4 * 4 * 2**20
    table = read_trip_file(str(path))
    assert table.num_rows == 300_000
    assert table["congestion_surcharge"].null_count == 150_000 and table["congestion_surcharge"][-1].as_py() == 2.5
    assert table["RatecodeID"].unique().to_pylist() == [1.0]
