"""Upload verification: a blob is stored only if its bytes (after decompression) match its digest."""

from __future__ import annotations

from typing import BinaryIO

from services.common.errors import ApiError, InvalidArgument
from services.common.hashing import DigestFunction, hash_hex, hasher
from services.common.resources import SHA256, Digest


class DecompressError(Exception):
    """The upload's zstd data is corrupt."""


class VerifyingSink:
    """Receives decompressed bytes: counts, hashes and writes them, refusing any overrun."""

    def __init__(self, file: BinaryIO, expected: Digest, function: DigestFunction) -> None:
        self.file = file
        self.expected = expected
        self.count = 0
        self.hash = hasher(function)

    def write(self, data: bytes) -> int:
        self.count += len(data)
        if self.count > self.expected.size:
            raise InvalidArgument(f"blob {self.expected}: received more than the digest's "
                                  f"{self.expected.size} bytes")
        self.hash.update(data)
        self.file.write(data)
        return len(data)

    def verify(self) -> None:
        if self.count != self.expected.size:
            raise InvalidArgument(f"blob {self.expected}: size mismatch, received {self.count} bytes "
                                  f"but the digest says {self.expected.size}")
        actual = self.hash.hexdigest()
        if actual != self.expected.hash:
            raise InvalidArgument(f"blob {self.expected}: hash mismatch, the data hashes to {actual}")


def feed(target: object, pieces: list[bytes]) -> None:
    """Write pieces to the sink, or to a zstd decompressor in front of it."""
    try:
        for piece in pieces:
            target.write(piece)  # type: ignore[attr-defined]
    except Exception as err:  # zstandard raises ZstdError for corrupt frames
        if isinstance(err, ApiError | OSError):  # a refusal of the sink, or the disk's (full, failing)
            raise
        raise DecompressError(str(err)) from err


def flush(target: object, sink: VerifyingSink) -> None:
    """End the decompressor (if any) and check the whole blob."""
    if target is not sink:
        try:
            target.flush()  # type: ignore[attr-defined]
        except Exception as err:
            raise DecompressError(str(err)) from err
    sink.verify()


def digest_of(data: bytes, function: DigestFunction = SHA256) -> Digest:
    """The digest of some bytes (tests, tools)."""
    return Digest(hash_hex(function, data), len(data))
