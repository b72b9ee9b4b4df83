"""File URIs of the public API (GetFile, GetFileRange, DeleteFile).

Accepted forms, with or without the scheme and host (the host is never dialled: the blob is
read from our own CAS under the caller's tenant):
  bytestream://host[:port]/[instance/]blobs/[function/]<hash>/<size>
  bytestream://host[:port]/[instance/]compressed-blobs/zstd/[function/]<hash>/<size>
  actioncache://host[:port]/[instance/]blobs/ac/[function/]<hash>/<size>
  [/][instance/]blobs/ac/[function/]<hash>/<size>          (an action cache entry)
`function` is a digest function's name (blake3, sha256, ...); without it the hash length decides
(services.common.resources).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from services.blobstore.access import Kind
from services.common.errors import InvalidArgument
from services.common.resources import BlobResource, parse_read_resource

_SCHEMES = ("bytestream", "actioncache")


@dataclass(frozen=True, slots=True)
class FileUri:
    kind: Kind
    resource: BlobResource


def _path(uri: str) -> str:
    if not uri:
        raise InvalidArgument("uri is required")
    if "://" in uri:
        parts = urlsplit(uri)
        if parts.scheme not in _SCHEMES:
            raise InvalidArgument(f"unsupported uri {uri!r}: only bytestream:// and actioncache:// URIs are supported")
        if not parts.netloc:
            raise InvalidArgument(f"invalid uri {uri!r}: missing host")
        return parts.path.lstrip("/")
    return uri.lstrip("/")


def parse_file_uri(uri: str) -> FileUri:
    """A CAS or action-cache entry named by `uri`; INVALID_ARGUMENT with the reason otherwise."""
    path = _path(uri)
    segments = path.split("/")
    for i in range(len(segments) - 1):
        if segments[i] in ("blobs", "zstd") and segments[i + 1] == "ac":
            without_ac = "/".join(segments[:i + 1] + segments[i + 2:])
            resource = parse_read_resource(without_ac)
            return FileUri(Kind.AC, BlobResource(resource.instance_name, resource.digest, function=resource.function))
    kind = Kind.AC if uri.startswith("actioncache://") else Kind.CAS
    if kind is Kind.AC:
        raise InvalidArgument(f"invalid uri {uri!r}: action cache URIs look like .../blobs/ac/<hash>/<size>")
    try:
        return FileUri(Kind.CAS, parse_read_resource(path))
    except InvalidArgument as err:
        raise InvalidArgument(f"invalid uri {uri!r}: only CAS (.../blobs/<hash>/<size>) and action cache "
                              f"(.../blobs/ac/<hash>/<size>) URIs are supported ({err.message})") from None
