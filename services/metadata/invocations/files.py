"""Files as the API shows them: name, URI, and the hash and size a bytestream:// URI carries."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from services.common.errors import ApiError
from services.common.resources import parse_read_resource
from services.gen.build_event_stream import build_event_stream_pb2 as bes


class FileRow(NamedTuple):
    name: str
    uri: str
    hash: str
    size_bytes: int


def digest_of(uri: str) -> tuple[str, int]:
    """(hash, size) of `bytestream://host/[instance/]blobs/<hash>/<size>`; ("", 0) for any other URI."""
    parts = urlsplit(uri)
    if parts.scheme != "bytestream":
        return "", 0
    try:
        digest = parse_read_resource(parts.path.lstrip("/")).digest
    except ApiError:
        return "", 0
    return digest.hash, digest.size


def file_row(file: bes.File) -> FileRow:
    """Inline contents and symlinks have no URI (as in the reference)."""
    uri = file.uri if file.WhichOneof("file") == "uri" else ""
    return FileRow(file.name, uri, *digest_of(uri))
