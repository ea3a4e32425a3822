"""extract: every supported location and format, and a clear error for every kind of bad file."""

from __future__ import annotations

import gzip
import shutil

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from tasks import settings
from tasks.extract import SourceError, read_trip_file
from tasks.retries import is_transient

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
