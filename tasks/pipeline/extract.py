"""Extract: one month's trip file from a local path, an http(s) URL or an `s3://` URL, as a local parquet file.

TLC publishes parquet; older releases and public mirrors publish CSV, plain or gzip. The format is found from
the file's first bytes, not its name, so a mirror's odd naming doesn't matter. A local parquet file is read where
it is. Anything else is staged on local disk first (`staged_parquet`): downloaded in chunks, and a CSV converted
block by block into a staged parquet file, which the month then streams like any local file and which is
removed when the month ends. A month's memory is then bounded by the batches of its plan, not by the size of its
file: the default source, TLC over https, would otherwise be held whole, twice (its bytes and its table).

Every failure becomes a `SourceError` that names the source and the problem, because "ArrowInvalid: magic bytes
not found" tells a user nothing about which of twelve months broke.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tasks.pipeline.staging import staging_folder
from tasks.redact import RedactsUrls, hide_aws_credentials_in_logs
from tasks.schema import SOURCE_TYPES, canonical_name
from tasks.settings import fsspec_options

PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
VERSION_KEYS = ("ETag", "etag", "mtime", "LastModified", "Last-Modified")  # s3fs, local files, fsspec's http
CSV_BLOCK_BYTES = 2**20  # CSV text parsed at a time
STAGED_ROW_GROUP_ROWS = 250_000  # rows per row group of a converted CSV: what one step of a streamed scan holds

hide_aws_credentials_in_logs()  # botocore's debug records print the session token; every S3 path imports this


class SourceError(RedactsUrls, ValueError):  # its message names the source: without credentials
    """A source that cannot be read: missing, empty, corrupt, not a trip file, or unreachable this time.

    Whether a retry may help is decided by `tasks.retries.is_transient` from the error it was raised from (a
    connection error or HTTP 503 yes, a 404 or a corrupt file no).
    """


def parquet_row_count(source: str) -> int:
    """The rows of a parquet file anywhere fsspec reaches, from its footer alone (a few KiB read).

    A streaming scan reads an S3 object through polars' own client, whose errors say little and carry no status;
    counting the rows first through fsspec meets a missing object, rejected credentials or a dead endpoint here,
    as the same `SourceError` (and the same retry decision) as a download.
    """
    with source_errors(source):
        filesystem, path = fsspec.core.url_to_fs(source, **fsspec_options(source))
        with filesystem.open(path, "rb") as handle:
            try:
                return pq.read_metadata(handle).num_rows
            except pa.ArrowInvalid as error:
                raise SourceError(f"{source}: corrupt or truncated parquet file: {error}") from error


@contextmanager
def source_errors(source: str) -> Iterator[None]:
    """Turn what reading `source` raises into a `SourceError` that names it; the original stays its cause, from
    which `tasks.retries` decides whether a retry may help."""
    try:
        yield
    except SourceError:
        raise
    except FileNotFoundError as error:
        what = "HTTP 404 Not Found" if source.startswith(("http://", "https://")) else "no such file"
        raise SourceError(f"{source}: {what}") from error
    except IsADirectoryError as error:
        raise SourceError(f"{source}: is a directory, expected a parquet or CSV file") from error
    except PermissionError as error:
        raise SourceError(f"{source}: permission denied: {error}") from error
    except Exception as error:  # network errors; aiohttp's ClientResponseError carries the HTTP status
        status = getattr(error, "status", None)
        detail = f"HTTP {status}" if status else f"{type(error).__name__}: {error}"
        raise SourceError(f"{source}: cannot be fetched: {detail}") from error


def source_fingerprint(source: str) -> dict[str, str | int | None]:
    """A cheap identity for a source's current content: its URI, size and version (ETag, or modification time).

    Reading only metadata (a HEAD request over http), this is what a cache key should use instead of hashing the
    data itself. A plain web server sends no ETag but a `Last-Modified`, which changes with each upload.
    """
    try:
        filesystem, path = fsspec.core.url_to_fs(source, **fsspec_options(source))
        info = filesystem.info(path)
    except FileNotFoundError as error:
        raise SourceError(f"{source}: no such file") from error
    version = next((info[key] for key in VERSION_KEYS if info.get(key) is not None), None)
    return {"uri": source, "size": info.get("size"), "version": str(version) if version is not None else None}


@contextmanager
def staged_parquet(source: str) -> Iterator[str]:
    """A local parquet file holding `source`'s trips, for as long as the `with` block runs.

    A local parquet file is itself. Anything else is staged in a folder removed when the block ends, whether it
    ends well or not (and, if the process is killed, by the next staging: `tasks.pipeline.staging`): a remote file is
    downloaded in chunks (fsspec's `get_file` streams it to disk, so the download holds a chunk, not the file),
    and a CSV, plain or gzip, is converted to parquet block by block.
    Errors name the source; a network error stays the cause, from which `tasks.retries` judges a retry.
    """
    if _is_local_parquet(source):
        yield source
        return
    with staging_folder("source") as folder:
        yield _stage(source, Path(folder))


@contextmanager
def parquet_to_scan(source: str) -> Iterator[tuple[str, int]]:
    """(where the month's parquet file can be scanned, its row count from the footer), for the `with` block.

    A parquet file on S3 is scanned where it is; any other source through a local parquet file (`staged_parquet`),
    removed when the block ends, however it ends: read the whole month inside the block."""
    if _is_s3_parquet(source):
        location, rows = source, parquet_row_count(source)  # through fsspec: S3 faults become SourceErrors
        _require_any(rows, source)
        yield location, rows
        return
    with staged_parquet(source) as path:
        try:
            rows = pq.read_metadata(path).num_rows
        except (pa.ArrowInvalid, OSError) as error:
            raise SourceError(f"{source}: corrupt or truncated parquet file: {error}") from error
        _require_any(rows, source)
        yield path, rows


def _require_any(rows: int, source: str) -> None:
    if rows == 0:
        raise SourceError(f"{source}: file holds no trip rows")


def _is_s3_parquet(source: str) -> bool:
    """Whether `source` is an S3 object that starts like parquet (4 bytes read). Any error answers no, so that
    `staged_parquet` reports it in its own words."""
    if not source.startswith("s3://"):
        return False
    try:
        filesystem, path = fsspec.core.url_to_fs(source, **fsspec_options(source))
        with filesystem.open(path, "rb") as handle:
            return handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC
    except Exception:  # any failure is reported by the fallback's read, in its own words
        return False


def _stage(source: str, folder: Path) -> str:
    with source_errors(source):
        filesystem, path = fsspec.core.url_to_fs(source, **fsspec_options(source))
        if fsspec.utils.get_protocol(source) not in ("file", "local"):
            filesystem.get_file(path, str(folder / "download"))
            path = str(folder / "download")
        kind = _sniff(path, source)
    if kind == "parquet":
        return path
    target = folder / "trips.parquet"
    _csv_to_parquet(path, kind == "gzip", target, source)
    if path.startswith(str(folder)):
        os.remove(path)  # one copy of the month on disk at a time
    return str(target)


def _sniff(path: str, source: str) -> str:
    """`parquet`, `gzip` (a gzip-compressed CSV) or `csv`, from the first bytes of the file at `path`."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if not head:
        raise SourceError(f"{source}: file is empty (0 bytes)")
    if head[:4] == PARQUET_MAGIC:
        return "parquet"
    kind = "csv"
    if head[:2] == GZIP_MAGIC:
        kind = "gzip"
        try:
            with gzip.open(path) as handle:
                head = handle.read(4096)
        except (OSError, EOFError) as error:
            raise SourceError(f"{source}: corrupt or truncated gzip file: {error}") from error
    if b"\x00" in head:
        raise SourceError(f"{source}: neither parquet nor CSV (binary content); corrupt or truncated parquet?")
    return kind


def csv_column_types(header: pa.Schema) -> dict[str, pa.DataType]:
    """The type each column of a CSV is read as, from its name: fixed for the whole file, so that a column empty
    in the first rows (2019's `congestion_surcharge`) or written `1` there and `1.0` later reads the same as in
    a parquet file. Codes are read as doubles and checked when normalized (1.0 is code 1, 1.5 is refused); times
    keep the zone the first block shows, if any; every other column is text (it is dropped when normalized)."""
    types = {}
    for field in header:
        target = SOURCE_TYPES.get(canonical_name(field.name))
        if target is None or pa.types.is_string(target):
            types[field.name] = pa.string()
        elif pa.types.is_timestamp(target):
            types[field.name] = pa.timestamp("us", field.type.tz if pa.types.is_timestamp(field.type) else None)
        else:
            types[field.name] = pa.float64()
    return types


def _csv_to_parquet(path: str, compressed: bool, target: Path, source: str) -> None:
    """Convert a CSV file, block by block, into a parquet file of `STAGED_ROW_GROUP_ROWS`-row groups."""
    read_options = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    compression = "gzip" if compressed else None
    try:
        with pa.input_stream(path, compression=compression) as stream:
            header = pa_csv.open_csv(stream, read_options=read_options).schema  # names, and zones, from block one
        convert = pa_csv.ConvertOptions(column_types=csv_column_types(header), strings_can_be_null=True)
        with pa.input_stream(path, compression=compression) as stream:
            reader = pa_csv.open_csv(stream, read_options=read_options, convert_options=convert)
            with pq.ParquetWriter(target, reader.schema, compression="zstd", compression_level=1) as writer:
                pending: list[pa.RecordBatch] = []
                for batch in reader:
                    pending.append(batch)
                    if sum(b.num_rows for b in pending) >= STAGED_ROW_GROUP_ROWS:
                        writer.write_table(pa.Table.from_batches(pending))
                        pending = []
                if pending:
                    writer.write_table(pa.Table.from_batches(pending))
    except pa.ArrowInvalid as error:
        raise SourceError(f"{source}: not a readable CSV file: {error}") from error
    except OSError as error:  # pyarrow's gzip stream: "Truncated compressed stream" and the like
        raise SourceError(f"{source}: corrupt or truncated gzip file: {error}") from error


def _read_parquet(path: str, source: str, memory_map: bool) -> pa.Table:
    try:
        table = pq.read_table(path, memory_map=memory_map)
    except (pa.ArrowInvalid, OSError) as error:
        raise SourceError(f"{source}: corrupt or truncated parquet file: {error}") from error
    return _require_rows(table, source)


def _require_rows(table: pa.Table, source: str) -> pa.Table:
    if table.num_rows == 0:
        raise SourceError(f"{source}: file holds no trip rows")
    return table


def _is_local_parquet(source: str) -> bool:
    if fsspec.utils.get_protocol(source) != "file" or not os.path.isfile(source):
        return False
    with open(source, "rb") as handle:
        return handle.read(4) == PARQUET_MAGIC


def read_trip_file(source: str) -> pa.Table:
    """Read one trip file from any supported location and format into memory (the in-memory engine's way).

    A local parquet file is read in place, memory-mapped, so its bytes are never copied into the process first;
    anything else is staged as a local parquet file first (`staged_parquet`), read, and its staged copy removed.
    """
    with staged_parquet(source) as path:
        return _read_parquet(path, source, memory_map=path == source)
