"""The digest functions the cache supports: REAPI's wire values, names, hash lengths and hashers.

A request names its function (`digest_function`, or a resource name's `blobs/blake3/...`
segment); a request without one (clients before REAPI 2.3) gets the function its hash length
implies, and 64 hex characters mean SHA-256, as REAPI says. BLAKE3 comes from the PyPI `blake3`
package, the SHA family from hashlib.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from enum import IntEnum
from typing import Protocol

import blake3

from services.common.errors import InvalidArgument


class DigestFunction(IntEnum):
    """Wire values of build.bazel.remote.execution.v2.DigestFunction.Value we support."""

    SHA256 = 1
    SHA1 = 2
    SHA384 = 5
    SHA512 = 6
    BLAKE3 = 9

    @property
    def label(self) -> str:
        """The lowercase name resource names and storage paths use ("blake3")."""
        return self.name.lower()


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


_HASHERS: dict[DigestFunction, Callable[[], Hasher]] = {
    DigestFunction.SHA256: hashlib.sha256,
    DigestFunction.SHA1: hashlib.sha1,
    DigestFunction.SHA384: hashlib.sha384,
    DigestFunction.SHA512: hashlib.sha512,
    DigestFunction.BLAKE3: blake3.blake3,
}


def hasher(function: DigestFunction) -> Hasher:
    return _HASHERS[function]()


def hash_hex(function: DigestFunction, data: bytes) -> str:
    h = hasher(function)
    h.update(data)
    return h.hexdigest()


EMPTY_HASH = {function: hash_hex(function, b"") for function in DigestFunction}
HEX_LENGTH = {function: len(empty) for function, empty in EMPTY_HASH.items()}
BY_LABEL = {function.label: function for function in DigestFunction}
# without a name, a hash's length says which function made it: BLAKE3 is the one that must be named
BY_LENGTH = {length: function for function, length in HEX_LENGTH.items() if function is not DigestFunction.BLAKE3}
SUPPORTED = ", ".join(sorted(BY_LABEL))


def inferred(digest_hash: str) -> DigestFunction:
    """The function a hash's length implies (SHA-256 for 64 characters and for anything odd, which
    validation then refuses with SHA-256's rule)."""
    return BY_LENGTH.get(len(digest_hash), DigestFunction.SHA256)


def function_of(value: int, hashes: Iterable[str] = ()) -> DigestFunction:
    """A request's function: the one it names, or (UNKNOWN) the one its first digest implies."""
    if value == 0:
        first = next(iter(hashes), "")
        return inferred(first) if first else DigestFunction.SHA256
    try:
        return DigestFunction(value)
    except ValueError:
        raise InvalidArgument(f"digest function {value} is not supported: this server supports {SUPPORTED}") from None
