"""An output root that cannot take the months fails the run before any month is read, naming the output root.

The cases are ones that really fail for the user running the tests, root included (which `chmod` does not stop):
a root that is a file, a root under a file, a folder the kernel refuses files in (`/sys/kernel`), and an S3
endpoint on a closed loopback port.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import boto3
import pytest
import s3fs

from flows.etl import main
from tasks.pipeline.output_check import OutputRootError, check_output_root

READ_ONLY_FOLDER = Path("/sys/kernel")  # sysfs: no one may create a file in it


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "lake"
    path.write_text("not a folder")
    return path


@pytest.fixture
def closed_s3_endpoint(monkeypatch) -> str:
    """Every S3 client pointed at a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield endpoint
    s3fs.S3FileSystem.clear_instance_cache()


def test_a_root_that_is_a_file_is_refused_by_name(a_file):
    with pytest.raises(OutputRootError, match=f"output root {a_file} is a file, not a folder"):
        check_output_root(str(a_file))


def test_a_root_under_a_file_is_refused_by_name(a_file):
    with pytest.raises(OutputRootError, match=f"output root {a_file}/out cannot be created: {a_file} is a file"):
        check_output_root(f"{a_file}/out")


@pytest.mark.skipif(not READ_ONLY_FOLDER.is_dir(), reason="no /sys/kernel on this system")
def test_a_folder_no_one_may_write_is_refused_by_name():
    with pytest.raises(OutputRootError, match=f"output root {READ_ONLY_FOLDER} cannot be written.*PermissionError"):
        check_output_root(str(READ_ONLY_FOLDER))


def test_an_unreachable_s3_output_is_named_as_the_output(closed_s3_endpoint):
    started = time.monotonic()
    with pytest.raises(OutputRootError, match=r"output root s3://taxi-lake/lake cannot be written \(the S3 output"):
        check_output_root("s3://taxi-lake/lake")
    assert time.monotonic() - started < 30


def test_a_writable_root_passes_and_keeps_no_probe(tmp_path, s3_bucket, moto_endpoint):
    check_output_root(str(tmp_path / "new" / "lake"))
    assert list(tmp_path.iterdir()) == []  # not even the folder: a run that fails writes nothing
    (tmp_path / "lake").mkdir()
    check_output_root(str(tmp_path / "lake"))
    assert list((tmp_path / "lake").iterdir()) == []
    check_output_root(f"s3://{s3_bucket}/lake")
    assert "Contents" not in boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=s3_bucket)


def test_a_missing_bucket_is_refused_by_name(s3_bucket):
    with pytest.raises(OutputRootError, match=f"output root s3://{s3_bucket}-absent/lake cannot be written"):
        check_output_root(f"s3://{s3_bucket}-absent/lake")


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_the_run_fails_on_its_output_before_reading_any_month(a_file, capsys):
    """The source does not exist either: the error is the output root's, so no month was read first."""
    source = str(a_file.parent / "absent" / "green_tripdata_2025-01.parquet")
    assert main(["--source", source, "--output", str(a_file)]) == 1
    error = capsys.readouterr().err
    assert f"output root {a_file} is a file" in error and "no such file" not in error
