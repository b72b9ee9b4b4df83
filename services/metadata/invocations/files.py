"""Files as the API shows them: name, URI, and the hash and size a bytestream:// URI carries."""

from __future__ import annotations

import re
from typing import NamedTuple

from services.gen.build_event_stream import build_event_stream_pb2 as bes

# bytestream://host[:port]/[instance/](blobs|compressed-blobs/zstd)/<sha256>/<size>, userinfo allowed
_BYTESTREAM = re.compile(r"bytestream://[^/]*/(?:[^?#]*/)?(?:blobs|compressed-blobs/zstd)/([0-9a-f]{64})/(\d+)")


class FileRow(NamedTuple):
    name: str
    uri: str
    hash: str
    size_bytes: int


def digest_of(uri: str) -> tuple[str, int]:
    """(hash, size) of `bytestream://host/[instance/]blobs/<hash>/<size>`; ("", 0) for any other URI."""
    match = _BYTESTREAM.fullmatch(uri)
    return (match[1], int(match[2])) if match else ("", 0)


def file_row(file: bes.File) -> FileRow:
    """Inline contents and symlinks have no URI (as in the reference)."""
    uri = file.uri if file.WhichOneof("file") == "uri" else ""
    return FileRow(file.name, uri, *digest_of(uri))
