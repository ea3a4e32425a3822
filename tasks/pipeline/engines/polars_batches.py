"""A month's datasets as plans over its file's batches, written in one pass: memory bounded by a batch, not a month.

A `Plan` is the source file and a function from any frame of its rows to a dataset's rows (polars expressions,
built once per batch). Every rule and derived column is row-wise once the whole-file facts are known (the DST
hour offsets and the month check, which `polars_month.check` computes first in a streamed pass), so applying a plan
to each batch of the file and concatenating the results is the plan applied to the file. `write_batches` reads the
file once, a batch at a time (pyarrow's `iter_batches`, one row group decoded at a time), runs every dataset's plan
on the batch, and appends each result to its own `pyarrow.parquet.ParquetWriter`: what is held is a batch and its
outputs, whatever the month's size. polars' streaming sink, by contrast, queues batches for its encoder without a
bound we can set (`benchmarks/README.md`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.settings import PARQUET_COMPRESSION, fsspec_options, polars_storage_options

# Rows per batch: enough that polars' per-batch planning is small next to the work, few enough that a batch and
# its outputs stay a few tens of MiB.
BATCH_ROWS = 100_000
# What s3fs fetches beyond each read of a file on S3: the column chunks that follow come from memory, one request
# serving several. Its default block (50 MiB) made the held memory grow with the file; 8 MiB keeps it flat.
S3_READ_AHEAD_BYTES = 8 * 2**20
# The files' zstd level: the encoder is the slowest step; level 1 is the fastest (same values written).
WRITE_OPTIONS = {"compression": PARQUET_COMPRESSION, "compression_level": 1}
Build = Callable[[pl.LazyFrame], pl.LazyFrame]


@dataclass(frozen=True)
class Plan:
    """A dataset of the file at `location`: `build` maps a frame of the file's rows to the dataset's rows, and
    `schema` (when set) is the Arrow schema its file is written in."""

    location: str
    build: Build
    schema: pa.Schema | None = None

    def then(self, step: Build, schema: pa.Schema | None = None) -> Plan:
        """This plan followed by `step` (a function of the frame this plan gives)."""
        build = self.build
        return Plan(self.location, lambda frame: step(build(frame)), schema)

    def frame(self) -> pl.LazyFrame:
        """The plan over the whole file, lazily (for the whole-file checks and for a lesson's table in memory)."""
        return self.build(scan(self.location))


def scan(location: str) -> pl.LazyFrame:
    """A lazy scan of the parquet file at `location` (a local path or an S3 URI)."""
    return pl.scan_parquet(location, storage_options=polars_storage_options(location) or None)


@contextmanager
def batches(location: str, batch_rows: int = BATCH_ROWS) -> Iterator[Iterator[pa.RecordBatch]]:
    """The file's rows, `batch_rows` at a time, read through fsspec (local or S3) for the `with` block.

    Without `pre_buffer=False` pyarrow keeps every column chunk it pre-buffered until the file is closed: the
    whole compressed file, by the last batch. On S3 the read-ahead is `S3_READ_AHEAD_BYTES` (local files ignore it)."""
    filesystem, path = fsspec.core.url_to_fs(location, **fsspec_options(location))
    with filesystem.open(path, "rb", cache_type="readahead", block_size=S3_READ_AHEAD_BYTES) as handle:
        yield pq.ParquetFile(handle, pre_buffer=False).iter_batches(batch_size=batch_rows)


def write_batches(plans: dict[str, Plan], files: dict[str, str], batch_rows: int = BATCH_ROWS) -> None:
    """Each plan of `plans` (all of one file) into its local parquet file in `files`, in one pass over the file."""
    (location,) = {plan.location for plan in plans.values()}
    with ExitStack() as stack:
        writers: dict[str, pq.ParquetWriter] = {}
        for batch in stack.enter_context(batches(location, batch_rows)):
            rows = pl.DataFrame(batch).lazy()
            outputs = pl.collect_all([plan.build(rows) for plan in plans.values()])
            for (name, plan), output in zip(plans.items(), outputs, strict=True):
                table = output.to_arrow()
                table = table.cast(plan.schema) if plan.schema is not None else table
                if name not in writers:
                    writer = pq.ParquetWriter(files[name], table.schema, **WRITE_OPTIONS)
                    writers[name] = stack.enter_context(writer)
                if table.num_rows:
                    writers[name].write_table(table)
