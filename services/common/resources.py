"""Digests, instance names and ByteStream resource names, validated once at the edge.

Grammar (REAPI v2):
  read:   [{instance}/]blobs/[{function}/]{hash}/{size}
          [{instance}/]compressed-blobs/{compressor}/[{function}/]{hash}/{size}
  write:  [{instance}/]uploads/{uuid}/blobs/[{function}/]{hash}/{size}[/{metadata...}]
          [{instance}/]uploads/{uuid}/compressed-blobs/{compressor}/[{function}/]{hash}/{size}[/{metadata...}]
`{function}` is a digest function's lowercase name (services.common.hashing: blake3, sha1,
sha256, sha384, sha512); without it the hash length decides, and 64 characters mean SHA-256.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import NamedTuple, cast

from services.common.errors import InvalidArgument, Unimplemented
from services.common.hashing import BY_LABEL, EMPTY_HASH, HEX_LENGTH, SUPPORTED, DigestFunction, inferred

SHA256 = DigestFunction.SHA256
SHA256_EMPTY = EMPTY_HASH[SHA256]
_HEX = re.compile(r"[0-9a-f]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._~@+=,:-]+")
_RESERVED = frozenset({"blobs", "uploads", "actions", "actionResults", "operations", "capabilities",
                       "compressed-blobs"})
MAX_INSTANCE_NAME = 256


class Compressor(Enum):
    """Wire values of build.bazel.remote.execution.v2.Compressor.Value we support."""

    IDENTITY = 0
    ZSTD = 1


_COMPRESSOR_NAMES = {"zstd": Compressor.ZSTD, "identity": Compressor.IDENTITY}


class Digest(NamedTuple):
    """A tuple, not a dataclass: a FindMissingBlobs makes ten thousand of them, and a tuple is
    built and hashed several times faster."""

    hash: str
    size: int

    def __str__(self) -> str:
        return f"{self.hash}/{self.size}"


# Digest(h, n) runs namedtuple's __new__ in Python; this is the same tuple built from C, ~40% cheaper
_new_digest = cast(Callable[[tuple[str, int]], Digest], partial(tuple.__new__, Digest))


def check_digest(hash_: str, size: int, function: DigestFunction = SHA256) -> Digest:
    """A valid digest of `function` or INVALID_ARGUMENT saying what is wrong."""
    length = HEX_LENGTH[function]
    if len(hash_) != length or not _HEX.fullmatch(hash_):
        raise InvalidArgument(f"invalid digest hash {hash_!r}: want {length} lowercase hex characters "
                              f"({function.label})")
    if size < 0:
        raise InvalidArgument(f"invalid digest size {size} for {hash_}: must not be negative")
    if size == 0 and hash_ != EMPTY_HASH[function]:
        raise InvalidArgument(f"digest {hash_}/0 has size 0 but is not the empty blob's {function.label} hash")
    return Digest(hash_, size)


def check_digests(hashes: list[str], sizes: list[int], function: DigestFunction = SHA256) -> list[Digest]:
    """Many digests checked at once: the same answers as `check_digest`, at C speed for the common
    case where all are valid (a FindMissingBlobs carries thousands)."""
    length = HEX_LENGTH[function]
    joined = "".join(hashes)
    valid = set(map(len, hashes)) <= {length} and joined == joined.lower() and (not sizes or min(sizes) > 0)
    if valid:
        try:
            valid = 2 * len(bytes.fromhex(joined)) == length * len(hashes)  # whitespace would make it shorter
        except ValueError:
            valid = False
    if valid:
        return list(map(_new_digest, zip(hashes, sizes, strict=True)))
    return [check_digest(h, n, function) for h, n in zip(hashes, sizes, strict=True)]


def check_instance_name(name: str) -> str:
    """Instance names become storage keys: refuse anything that could escape or confuse them."""
    if len(name) > MAX_INSTANCE_NAME:
        raise InvalidArgument(f"instance name longer than {MAX_INSTANCE_NAME} characters")
    if name == "":
        return name
    if name.startswith("/") or name.endswith("/"):
        raise InvalidArgument(f"instance name {name!r} must not start or end with '/'")
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidArgument(f"instance name {name!r} contains an empty, '.' or '..' segment")
        if segment in _RESERVED:
            raise InvalidArgument(f"instance name {name!r} uses the reserved word {segment!r}")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidArgument(f"instance name {name!r} contains characters outside [A-Za-z0-9._~@+=,:-]")
    return name


def check_compressor(value: int) -> Compressor:
    try:
        return Compressor(value)
    except ValueError:
        raise Unimplemented(f"unsupported compressor {value}: this server supports identity and zstd") from None


@dataclass(frozen=True, slots=True)
class BlobResource:
    instance_name: str
    digest: Digest
    compressor: Compressor = Compressor.IDENTITY
    function: DigestFunction = SHA256


def _parse_tail(name: str, instance_parts: list[str], kind: str, rest: list[str]) -> tuple[BlobResource, list[str]]:
    """Parse `[{function}/]{hash}/{size}` (after `blobs`) or `{compressor}/[{function}/]{hash}/{size}`
    (after `compressed-blobs`)."""
    compressor = Compressor.IDENTITY
    if kind == "compressed-blobs":
        if not rest:
            raise InvalidArgument(f"resource name {name!r}: missing compressor after 'compressed-blobs'")
        compressor = _COMPRESSOR_NAMES.get(rest[0])  # type: ignore[assignment]
        if compressor is None:
            raise Unimplemented(f"resource name {name!r}: unsupported compressor {rest[0]!r} (supported: zstd)")
        if compressor is Compressor.IDENTITY:
            raise InvalidArgument(f"resource name {name!r}: use 'blobs/' for uncompressed data")
        rest = rest[1:]
    function = BY_LABEL.get(rest[0]) if len(rest) >= 3 and not _HEX.fullmatch(rest[0]) else None
    if function is not None:
        rest = rest[1:]
    elif len(rest) >= 3 and not _HEX.fullmatch(rest[0]) and _HEX.fullmatch(rest[1]):
        raise InvalidArgument(f"resource name {name!r}: digest function {rest[0]!r} is not supported "
                              f"(supported: {SUPPORTED})")
    if len(rest) < 2:
        raise InvalidArgument(f"resource name {name!r}: expected .../{kind}/<hash>/<size>")
    hash_, size_text = rest[0], rest[1]
    if not size_text.isdigit():
        raise InvalidArgument(f"resource name {name!r}: size {size_text!r} is not a non-negative integer")
    if function is None:
        function = inferred(hash_)
    digest = check_digest(hash_, int(size_text), function)
    instance = check_instance_name("/".join(instance_parts))
    return BlobResource(instance, digest, compressor, function), rest[2:]


def _split_at(name: str, keywords: tuple[str, ...]) -> tuple[list[str], str, list[str]]:
    parts = name.split("/")
    for i, part in enumerate(parts):
        if part in keywords:
            return parts[:i], part, parts[i + 1:]
    raise InvalidArgument(f"malformed resource name {name!r}: no {' or '.join(keywords)} segment")


def parse_read_resource(name: str) -> BlobResource:
    if not name:
        raise InvalidArgument("resource_name is empty")
    instance, kind, rest = _split_at(name, ("blobs", "compressed-blobs"))
    resource, extra = _parse_tail(name, instance, kind, rest)
    if extra:
        raise InvalidArgument(f"resource name {name!r}: unexpected trailing segments {'/'.join(extra)!r}")
    return resource


def parse_write_resource(name: str) -> BlobResource:
    if not name:
        raise InvalidArgument("resource_name is empty on the first write request")
    instance, _, rest = _split_at(name, ("uploads",))
    if len(rest) < 2 or rest[1] not in ("blobs", "compressed-blobs") or not rest[0]:
        raise InvalidArgument(f"malformed write resource name {name!r}: expected "
                              "[instance/]uploads/<uuid>/blobs/<hash>/<size>")
    resource, _metadata = _parse_tail(name, instance, rest[1], rest[2:])
    return resource


def resource_path(resource: BlobResource) -> str:
    """The read resource name for a blob (the inverse of parse_read_resource)."""
    prefix = f"{resource.instance_name}/" if resource.instance_name else ""
    function = function_segment(resource.function)
    if resource.compressor is Compressor.ZSTD:
        return f"{prefix}compressed-blobs/zstd/{function}{resource.digest}"
    return f"{prefix}blobs/{function}{resource.digest}"


def function_segment(function: DigestFunction) -> str:
    """The resource-name segment naming `function`: "blake3/", or "" for SHA-256, the default."""
    return "" if function is SHA256 else f"{function.label}/"
