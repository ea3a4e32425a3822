"""The lessons that need real services: S3 (a moto server) and Dask (a LocalCluster and a real scheduler)."""

from __future__ import annotations

import os

import boto3
import pyarrow as pa
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from prefect_aws import S3Bucket

import servers
from blocks.register import credentials_from_env, register_blocks
from flows import dask_runner, disk_io, s3_results
from tasks import settings

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture
def fresh_bucket_name(s3_bucket, monkeypatch) -> str:
    """A bucket name that does not exist yet: registration must create it."""
    name = f"{s3_bucket}-results"
    monkeypatch.setenv("TAXI_S3_BUCKET", name)
    return name


def test_block_registration_creates_the_bucket_and_is_idempotent(fresh_bucket_name, capsys):
    assert register_blocks() == "s3-bucket/taxi-results"
    assert f"bucket {fresh_bucket_name} on http://127.0.0.1" in capsys.readouterr().out
    assert register_blocks() == "s3-bucket/taxi-results"
    assert f"{fresh_bucket_name} on" in (out := capsys.readouterr().out) and out.rstrip().endswith("exists")
    assert S3Bucket.load(settings.S3_BUCKET_BLOCK).bucket_name == fresh_bucket_name


def test_results_land_in_the_bucket_and_load_back(fresh_bucket_name):
    register_blocks()
    outcome = s3_results.s3_results(months=["2025-01"])
    keys = s3_results.list_objects(outcome["prefix"])
    assert [key.rsplit("/", 1)[1] for key in keys] == ["yellow-2025-01-trips", "yellow-borough-counts"]
    trips = s3_results.load_result(settings.S3_BUCKET_BLOCK, keys[0])
    assert isinstance(trips, pa.Table) and trips.num_rows > 0
    counts = s3_results.load_result(settings.S3_BUCKET_BLOCK, keys[1])
    assert counts == outcome["counts"] and sum(counts.values()) == trips.num_rows


def test_disk_io_lesson_reads_and_writes_s3(s3_bucket, tiny_source):
    source, months = tiny_source
    via_s3 = disk_io.months_via_paths(months=months[:2], source=source, output=f"s3://{s3_bucket}/lessons/disk-io")
    assert via_s3 == disk_io.months_in_memory(months=months[:2], source=source)
    assert {row["month"] for row in via_s3} == set(months[:2])
    listing = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="lessons/disk-io/trips/")
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert len([key for key in keys if key.endswith(".parquet")]) == 2  # one data file per month
    assert len([key for key in keys if "/_delta_log/" in key]) == 2  # one commit per month


def block_settings(name: str) -> tuple[str, str | None]:
    bucket = S3Bucket.load(name)
    return bucket.bucket_name, bucket.credentials.aws_client_parameters.endpoint_url


def lesson_blocks() -> list[str]:
    with get_client(sync_client=True) as client:
        documents = client.read_block_documents()
    return sorted(d.name for d in documents if d.name and d.name.startswith("lesson-s3-"))


def test_s3_lesson_uses_the_registered_block_without_rewriting_it(fresh_bucket_name, monkeypatch, moto_endpoint):
    register_blocks()
    registered = block_settings(settings.S3_BUCKET_BLOCK)
    monkeypatch.setenv("TAXI_S3_BUCKET", f"{fresh_bucket_name}-elsewhere")  # the environment moved on since
    outcome = s3_results.demonstrate(months=["2025-01"])
    assert block_settings(settings.S3_BUCKET_BLOCK) == registered == (fresh_bucket_name, moto_endpoint)
    assert outcome["bucket_block"] == settings.S3_BUCKET_BLOCK
    stored = boto3.client("s3").list_objects_v2(Bucket=fresh_bucket_name, Prefix=outcome["prefix"])["Contents"]
    assert {item["Key"]: item["Size"] for item in stored} == outcome["objects"]
    trips_key = f"{outcome['prefix']}yellow-2025-01-trips"
    assert outcome["first_trips_object"] == trips_key
    assert outcome["first_trips_rows"] == sum(outcome["counts"].values()) > 0


def test_s3_lesson_leaves_a_dead_registered_block_alone(fresh_bucket_name, monkeypatch, moto_endpoint):
    dead = f"http://127.0.0.1:{servers.free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)  # registered while a local S3 ran there, since stopped
    credentials = credentials_from_env()
    credentials.save(settings.AWS_CREDENTIALS_BLOCK, overwrite=True)
    S3Bucket(bucket_name=fresh_bucket_name, credentials=credentials).save(settings.S3_BUCKET_BLOCK, overwrite=True)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    outcome = s3_results.demonstrate(months=["2025-01"])
    assert block_settings(settings.S3_BUCKET_BLOCK) == (fresh_bucket_name, dead)
    assert outcome["bucket_block"].startswith("lesson-s3-")
    assert outcome["first_trips_rows"] == sum(outcome["counts"].values()) > 0
    assert lesson_blocks() == [], "the run's own blocks are deleted when it ends"


def test_s3_lesson_with_no_s3_at_all_runs_on_its_own_moto_and_leaves_the_environment(monkeypatch, tmp_path):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "absent"))  # no credentials in boto3's usual files either
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(settings, "S3_BUCKET_BLOCK", f"taxi-results-absent-{os.getpid()}")  # none registered
    before = dict(os.environ)
    outcome = s3_results.demonstrate(months=["2025-01"])
    assert dict(os.environ) == before, "the local S3 is reached through the run's blocks, not the environment"
    assert outcome["bucket_block"].startswith("lesson-s3-")
    assert outcome["first_trips_rows"] == sum(outcome["counts"].values()) > 0
    assert lesson_blocks() == []


@pytest.fixture
def tiny_source(tmp_path) -> tuple[str, list[str]]:
    from data.generate import write_month
    from tasks.months import Month

    months = ["2025-01", "2025-02", "2025-03"]
    for month in months:
        write_month("yellow", Month.parse(month), 2_000, tmp_path / "src")
    return str(tmp_path / "src" / "{service}_tripdata_{month}.parquet"), months


def _comparable(summaries: list[dict]) -> list[tuple]:
    return [(s["month"], s["rows_in"], s["rows_clean"], s["quarantined_by_reason"]) for s in summaries]


def test_local_cluster_matches_sequential(tiny_source, tmp_path):
    source, months = tiny_source
    sequential = dask_runner.sequential_months(months=months, source=source, output=str(tmp_path / "seq"))
    parallel = dask_runner.run(months=months, source=source, output=str(tmp_path / "dask"))
    assert _comparable(parallel["months"]) == _comparable(sequential)
    assert sum(parallel["trips_per_borough"].values()) == sum(s["rows_clean"] for s in sequential)


@pytest.fixture
def dask_cluster(tmp_path, monkeypatch):
    """A real `dask scheduler` and two `dask worker`s on 127.0.0.1, reporting to the test's Prefect server."""
    monkeypatch.setattr(settings, "RUN_DIR", tmp_path / "run")
    variables = servers.start_dask(PREFECT_API_URL.value(), workers=2)
    yield variables["TAXI_DASK_ADDRESS"]
    pids = [int(path.read_text()) for path in settings.RUN_DIR.glob("*.pid")]
    stopped = servers.stop()
    assert sorted(stopped) == ["dask-scheduler", "dask-worker-0", "dask-worker-1"]
    for pid in pids:  # stopped means gone, by the recorded process id
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_existing_scheduler(dask_cluster, tiny_source, tmp_path):
    source, months = tiny_source
    result = dask_runner.run(address=dask_cluster, months=months, source=source, output=str(tmp_path / "out"))
    sequential = dask_runner.sequential_months(months=months, source=source, output=str(tmp_path / "seq"))
    assert _comparable(result["months"]) == _comparable(sequential)
