"""Extract: read one month's trip file from a local path, an http(s) URL or an `s3://` URL.

TLC publishes parquet; older releases and public mirrors publish CSV, plain or gzip. The format is found from
the file's first bytes, not its name, so a mirror's odd naming doesn't matter. Every failure becomes a
`SourceError` that names the source and the problem, because "ArrowInvalid: magic bytes not found" tells a user
nothing about which of twelve months broke.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.redact import RedactsUrls, hide_aws_credentials_in_logs
from tasks.retries import network_retry_options
from tasks.settings import fsspec_options

PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"

hide_aws_credentials_in_logs()  # botocore's debug records print the session token; every S3 path imports this


class SourceError(RedactsUrls, ValueError):  # its message names the source: without credentials
    """A source that cannot be read: missing, empty, corrupt, not a trip file, or unreachable this time.

    Whether a retry may help is decided by `tasks.retries.is_transient` from the error it was raised from (a
    connection error or HTTP 503 yes, a 404 or a corrupt file no).
    """


def fetch_bytes(source: str) -> bytes:
    """The raw bytes of `source`, with missing files, HTTP and network errors turned into `SourceError`."""
    with source_errors(source):
        filesystem, path = fsspec.core.url_to_fs(source, **fsspec_options(source))
        return filesystem.cat_file(path)


def parquet_row_count(source: str) -> int:
    """The rows of a parquet file anywhere fsspec reaches, from its footer alone (a few KiB read).

    A streaming scan reads an S3 object through polars' own client, whose errors say little and carry no status;
    counting the rows first through fsspec meets a missing object, rejected credentials or a dead endpoint here,
    as the same `SourceError` (and the same retry decision) as `fetch_bytes`.
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

    Reading only metadata, this is what a cache key should use instead of hashing the data itself.
    """
    try:
        filesystem, path = fsspec.core.url_to_fs(source, **fsspec_options(source))
        info = filesystem.info(path)
    except FileNotFoundError as error:
        raise SourceError(f"{source}: no such file") from error
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return {"uri": source, "size": info.get("size"), "version": str(version) if version is not None else None}


def parse_trip_bytes(data: bytes, source: str) -> pa.Table:
    """Decode parquet, CSV or gzip-compressed CSV bytes into an Arrow table (columns as the file has them)."""
    if not data:
        raise SourceError(f"{source}: file is empty (0 bytes)")
    if data[:4] == PARQUET_MAGIC:
        return _read_parquet(pa.BufferReader(data), source)
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise SourceError(f"{source}: corrupt or truncated gzip file: {error}") from error
    return _require_rows(_parse_csv(data, source), source)


def _read_parquet(where: str | pa.BufferReader, source: str) -> pa.Table:
    try:
        table = pq.read_table(where, memory_map=isinstance(where, str))
    except (pa.ArrowInvalid, OSError) as error:
        raise SourceError(f"{source}: corrupt or truncated parquet file: {error}") from error
    return _require_rows(table, source)


def _require_rows(table: pa.Table, source: str) -> pa.Table:
    if table.num_rows == 0:
        raise SourceError(f"{source}: file holds no trip rows")
    return table


def _parse_csv(data: bytes, source: str) -> pa.Table:
    if b"\x00" in data[:4096]:
        raise SourceError(f"{source}: neither parquet nor CSV (binary content); corrupt or truncated parquet?")
    try:
        return pa_csv.read_csv(io.BytesIO(data))
    except pa.ArrowInvalid as error:
        raise SourceError(f"{source}: not a readable CSV file: {error}") from error


def _is_local_parquet(source: str) -> bool:
    if fsspec.utils.get_protocol(source) != "file" or not os.path.isfile(source):
        return False
    with open(source, "rb") as handle:
        return handle.read(4) == PARQUET_MAGIC


def read_trip_file(source: str) -> pa.Table:
    """Read one trip file from any supported location and format.

    A local parquet file is read in place, memory-mapped, so its bytes are never copied into the process first;
    anything else is fetched whole (one request) and parsed from memory.
    """
    if _is_local_parquet(source):
        return _read_parquet(source, source)
    return parse_trip_bytes(fetch_bytes(source), source)


# The step as a task (tasks/__init__.py). Transient faults (timeouts, refused connections, HTTP 5xx/429, S3
# throttling) are retried with backoff; a 404, rejected credentials or a corrupt or empty file fail at once, so a bad
# month fails fast instead of retrying a file that will never be good.
extract = task(name="extract", cache_policy=NO_CACHE, **network_retry_options())(read_trip_file)
