"""Files as the API shows them: name, URI, and the hash and size a bytestream:// URI carries."""

from __future__ import annotations

from typing import NamedTuple

from services.blobstore.access import Kind
from services.common.errors import InvalidArgument
from services.common.uris import parse_file_uri
from services.gen.build_event_stream import build_event_stream_pb2 as bes


class FileRow(NamedTuple):
    name: str
    uri: str
    hash: str
    size_bytes: int


def digest_of(uri: str) -> tuple[str, int]:
    """(hash, size) of a CAS blob's `bytestream://host/[instance/]blobs/[function/]<hash>/<size>`
    (the grammar GetFile reads, services.common.uris); ("", 0) for any other URI."""
    if not uri.startswith("bytestream://"):
        return "", 0
    try:
        parsed = parse_file_uri(uri)
    except InvalidArgument:
        return "", 0
    if parsed.kind is not Kind.CAS:
        return "", 0
    return parsed.resource.digest.hash, parsed.resource.digest.size


def file_row(file: bes.File) -> FileRow:
    """Inline contents and symlinks have no URI (as in the reference)."""
    uri = file.uri if file.WhichOneof("file") == "uri" else ""
    return FileRow(file.name, uri, *digest_of(uri))
