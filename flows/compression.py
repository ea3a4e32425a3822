"""Lesson 5, result serializers: what a persisted result costs in bytes and seconds, and a better one for frames.

What it does. When Prefect persists a task result (for caching, retries or S3 storage), a serializer turns it
into bytes: `pickle` by default, `json`, or `compressed/pickle` and `compressed/json`, which run a compressor
over them (`compressionlib`: `lzma` by default, or `zlib`, `bz2`, ...). This lesson persists the same trips frame
with each, and adds `ParquetSerializer` (`tasks/serializers.py`), a custom `Serializer` with its own `type` that
stores frames as parquet + zstd.

When it helps. Compression pays when results are large and storage or network is the bottleneck (S3). For
small JSON-able summaries, `compressed/json` is the natural choice. For frames, a columnar format beats
compressing a pickle on both size and speed.

What it costs. Compression is CPU time on every write and read: lzma is the smallest of the pickles and by far
the slowest (`serializer` in `benchmarks/results.md`). Note the bytes Prefect stores are base64 text inside a
JSON record, a third larger than the raw bytes: every size here is what lands in storage.

The trap this lesson avoids. A fixed `result_storage_key` is a cache key: Prefect treats an existing record under
it as the committed result and returns it without running the task, so a second run with another `rows` would get
the first run's frame back. Each run therefore stores under its own flow run id
(`lesson-compression/<flow run id>/<serializer>`, in Prefect's local result storage). The same goes for cache
policies: `summarize` is keyed by its cheap arguments with the frame excluded (`DEFAULT - "frame"`), since the
default policy would hash the whole frame on every call (`flows/quote.py` measures that cost).

Public API only. Sizes and timings go through `prefect.results.ResultStore`, the object Prefect itself persists a
task's result with: `write` builds the same record a task run stores (serializer name, base64 payload) and `read`
returns it with the value as `.result`. The record's class lives in a private module (`prefect._internal`) and
Prefect offers no public way to encode a record without storing it, so the lesson stores every record in a
scratch folder instead of importing that class.

What you see. Each run publishes the table artifact `lesson-compression` (bytes stored, seconds to write and to
read, per serializer) and logs the same rows.

Run it: `python -m flows.compression` (on the committed sample; prints size and time per serializer).

Course page: `docs/lessons/compression.md` (`make docs` builds the site).
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import DEFAULT
from prefect.filesystems import LocalFileSystem
from prefect.results import ResultStore
from prefect.runtime import flow_run
from prefect.serializers import CompressedJSONSerializer, CompressedSerializer, PickleSerializer, Serializer
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

from tasks.observe.lesson_report import publish_lesson_table
from tasks.observe.measure import seconds
from tasks.observe.metrics import metered
from tasks.observe.metrics_publish import monitored
from tasks.serializers import ParquetSerializer

SERIALIZERS: dict[str, Serializer] = {
    "pickle": PickleSerializer(),
    "compressed/pickle (lzma)": CompressedSerializer(serializer="pickle", compressionlib="lzma"),
    "compressed/pickle (zlib)": CompressedSerializer(serializer="pickle", compressionlib="zlib"),
    "compressed/pickle (bz2)": CompressedSerializer(serializer="pickle", compressionlib="bz2"),
    "parquet (zstd)": ParquetSerializer(),
}


def measure_serializer(frame: pd.DataFrame, serializer: Serializer, folder: Path | None = None) -> dict[str, float]:
    """Bytes Prefect stores for `frame` as a task result, and seconds to write them and to read the frame back.

    Written and read through a `ResultStore` on a local folder (`folder`, else a temporary one), with its
    in-memory cache off so that the read really decodes the stored bytes.
    """
    with tempfile.TemporaryDirectory(prefix="lesson-compression-") if folder is None else nullcontext(folder) as where:
        store = ResultStore(
            result_storage=LocalFileSystem(basepath=str(where)), serializer=serializer, cache_result_in_memory=False
        )
        key = "frame"
        write = seconds(lambda: store.write(frame, key=key))
        read = seconds(lambda: store.read(key).result)
        return {"bytes": (Path(where) / key).stat().st_size, "write_s": write, "read_s": read}


def read_stored_result(key: str, folder: str | Path | None = None):
    """The value a task run persisted under `key` in local result storage (`folder`, else Prefect's default one)."""
    basepath = str(folder) if folder is not None else str(PREFECT_LOCAL_STORAGE_PATH.value())
    return ResultStore(result_storage=LocalFileSystem(basepath=basepath)).read(key).result


ARTIFACT_KEY = "lesson-compression"


def storage_key(label: str, run_id: str) -> str:
    """Where one flow run persists the frame for one serializer (under Prefect's local result storage).

    The run id makes the key unique per run: an existing key would be returned as already computed.
    """
    return f"lesson-compression/{run_id}/{label.replace(' ', '_').replace('/', '-').replace('(', '').replace(')', '')}"


# Keyed by the run, the task's code and `rows`, which pick this run's frame: never by the frame's contents.
@metered
@task(persist_result=True, result_serializer=CompressedJSONSerializer(), cache_policy=DEFAULT - "frame")
def summarize(frame: pd.DataFrame, rows: int | None) -> dict:
    """A small JSON-able summary: `compressed/json` is the natural serializer for it. `rows` is the cheap identity
    of `frame` within a run (the first `rows` of the sample), so the cache key need not hash the frame."""
    return {"rows": len(frame), "total_amount": round(float(frame["total_amount"].sum()), 2)}


@metered
@task(persist_result=True)
def keep_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the frame so Prefect persists it with whichever serializer `with_options` gives."""
    return frame


@monitored
@flow(name="lesson-compression")
def compression_lesson(rows: int | None = None) -> dict[str, dict[str, float]]:
    """Persist the sample's trips (the first `rows`, if given) with every serializer; report bytes and seconds."""
    from flows.quote import load_sample

    frame = load_sample()
    frame = frame.head(rows) if rows else frame
    summarize(frame, rows)
    measured = {}
    for label, serializer in SERIALIZERS.items():
        key = storage_key(label, flow_run.id)
        persisted = keep_frame.with_options(result_serializer=serializer, result_storage_key=key)(frame)
        if persisted.shape != frame.shape:
            raise RuntimeError(f"{key}: the persisted result is not this run's frame ({persisted.shape})")
        measured[label] = measure_serializer(frame, serializer)
        measured[label]["bytes_on_disk"] = (Path(PREFECT_LOCAL_STORAGE_PATH.value()) / key).stat().st_size
        measured[label]["rows"] = len(persisted)
    publish_lesson_table(
        ARTIFACT_KEY,
        [{"serializer": label, **row} for label, row in measured.items()],
        f"result serializers on {len(frame):,} trips: bytes stored, write and read seconds "
        "(full size: `serializer` in benchmarks/results.md)",
    )
    return measured


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m flows.compression", description=__doc__.split("\n\n")[0]).parse_args(argv)
    for label, row in compression_lesson().items():
        print(
            f"{label:26} {row['bytes_on_disk'] / 1e6:7.2f} MB  write {row['write_s']:.3f} s  read {row['read_s']:.3f} s"
        )


if __name__ == "__main__":
    main()
