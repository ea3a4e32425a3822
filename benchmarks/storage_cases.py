"""The storage lessons' cases: what persisting a result costs, by serializer and by where it is stored."""

from __future__ import annotations

import statistics
from pathlib import Path

from prefect.filesystems import LocalFileSystem
from prefect.results import ResultStore
from prefect.serializers import CompressedSerializer
from prefect_aws import AwsCredentials, S3Bucket
from prefect_aws.client_parameters import AwsClientParameters

from benchmarks.harness import Size, first_month_frame, months_on_disk
from blocks.register import ensure_bucket
from flows import compression
from servers import start_s3, stop
from tasks import settings
from tasks.months import Month
from tasks.observe.measure import Result, interleaved_timings, spread
from tasks.pipeline.month import read_month_in_memory
from tasks.pipeline.zones import load_zone_table
from tasks.serializers import ParquetSerializer

MIB = 2**20


def serializer_case(size: Size, workdir: Path) -> list[Result]:
    """Every serializer of the lesson, measured alike; parquet against lzma and against the best compressed one."""
    frame = first_month_frame(size, workdir).head(size.serializer_rows)
    serializers = compression.SERIALIZERS
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in serializers}
    for _ in range(size.repeats):
        for label, serializer in serializers.items():
            runs[label].append(compression.measure_serializer(frame, serializer))
    persist_load = {label: [r["write_s"] + r["read_s"] for r in samples] for label, samples in runs.items()}
    stored_mib = {label: [r["bytes"] / MIB for r in samples] for label, samples in runs.items()}
    compressed = {
        getattr(serializer, "compressionlib", label): label
        for label, serializer in serializers.items()
        if isinstance(serializer, CompressedSerializer)
    }
    parquet = next(label for label, s in serializers.items() if isinstance(s, ParquetSerializer))
    lzma = compressed["lzma"]  # CompressedSerializer's default compressionlib
    fastest = min(compressed.values(), key=lambda label: statistics.median(persist_load[label]))
    smallest = min(compressed.values(), key=lambda label: min(stored_mib[label]))
    details = [
        {
            "serializer": label,
            "stored MiB": stored_mib[label][0],
            "write s": spread([r["write_s"] for r in samples]),
            "read s": spread([r["read_s"] for r in samples]),
        }
        for label, samples in runs.items()
    ]
    rows, lesson = len(frame), "flows/compression.py"
    versus_lzma = Result.from_repeats(
        "serializer",
        f"persist + load seconds: {lzma}, Prefect's default compressor, vs {parquet}",
        persist_load[lzma],
        persist_load[parquet],
        rows,
        lesson=lesson,
        target=">= 50x faster and no larger",
        details=details,
    )
    versus_lzma.met = versus_lzma.ratio >= 50 and stored_mib[parquet][0] <= stored_mib[lzma][0]
    return [
        versus_lzma,
        Result.from_repeats(
            "serializer_fastest_compressed",
            f"persist + load seconds: fastest compressed pickle, {fastest}, vs {parquet}",
            persist_load[fastest],
            persist_load[parquet],
            rows,
            lesson=lesson,
        ),
        Result.from_repeats(
            "serializer_size",
            f"stored size: smallest compressed pickle, {smallest}, vs {parquet}",
            stored_mib[smallest],
            stored_mib[parquet],
            rows,
            unit="MiB",
            lesson=lesson,
        ),
    ]


def s3_results_case(size: Size, workdir: Path) -> list[Result]:
    """One month's clean trips persisted and loaded through Prefect's `ResultStore` with the lesson's parquet
    serializer: an `S3Bucket` on a moto server in its own process on 127.0.0.1, against a local folder. A cost,
    not a speed-up: the ratio is how many times longer S3 takes (loopback; a real S3 adds network latency)."""
    source, months = months_on_disk(size, workdir, 1)
    uri = source.format(service="yellow", month=months[0])
    _, trips, _ = read_month_in_memory(uri, "yellow", Month.parse(months[0]), load_zone_table(), "polars")
    s3 = start_s3()  # its own process, as a real S3 is: it does not share this process's interpreter
    try:
        credentials = AwsCredentials(  # a block in memory: never overwrite a server's saved blocks
            aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"],
            region_name=settings.aws_region(),
            aws_client_parameters=AwsClientParameters(endpoint_url=s3["AWS_ENDPOINT_URL"]),
        )
        ensure_bucket(credentials, settings.s3_bucket_name())
        storages = {
            "s3": S3Bucket(bucket_name=settings.s3_bucket_name(), credentials=credentials),
            "local": LocalFileSystem(basepath=str(workdir / "local-results")),
        }
        stores = {
            label: ResultStore(result_storage=storage, serializer=ParquetSerializer(), cache_result_in_memory=False)
            for label, storage in storages.items()
        }
        steps = {
            f"{label} {step}": work
            for label, store in stores.items()
            for step, work in (
                ("persist", lambda store=store: store.write(trips, key="bench-s3/trips")),
                ("load", lambda store=store: store.read("bench-s3/trips").result),
            )
        }
        samples = interleaved_timings(steps, size.repeats)
    finally:
        stop(["s3"])
    total = {
        label: [p + q for p, q in zip(samples[f"{label} persist"], samples[f"{label} load"], strict=True)]
        for label in stores
    }
    details = [{"step": label, "seconds": spread(values)} for label, values in samples.items()]
    return [
        Result.from_repeats(
            "s3_results",
            "persist + load seconds of one month's trips (parquet): S3Bucket on a moto process vs local storage",
            total["s3"],
            total["local"],
            trips.num_rows,
            lesson="flows/s3_results.py",
            target="none: the cost of shared storage",
            details=details,
        )
    ]
