"""Exercise 5 (serializers): measure what a frame costs in storage with a compressed pickle and with parquet."""

from typing import Any

from prefect.serializers import CompressedSerializer, PickleSerializer

from tasks.serializers import ParquetSerializer


def serializers_to_compare() -> dict[str, Any]:
    """Prefect's zlib-compressed pickle (its fastest compressor) against the project's parquet serializer."""
    return {
        "compressed/pickle (zlib)": CompressedSerializer(serializer=PickleSerializer(), compressionlib="zlib"),
        "parquet (zstd)": ParquetSerializer(),
    }


def stored_bytes(frame: Any) -> dict[str, int]:
    """Bytes each serializer would store for `frame`: what lands in result storage."""
    return {name: len(serializer.dumps(frame)) for name, serializer in serializers_to_compare().items()}
