"""Opaque page tokens for keyset pagination.

A token carries the last row's sort key and a fingerprint of the query it belongs to, so a token is
useless with another query (INVALID_ARGUMENT) and a page never depends on an offset: the next page
costs the same however deep into a large invocation it starts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from services.common.errors import InvalidArgument

_VERSION = 1


def _fingerprint(query: tuple[str, ...]) -> str:
    return hashlib.sha256("\0".join(query).encode()).hexdigest()[:16]


def encode(query: tuple[str, ...], position: list[Any]) -> str:
    """The token for the page after `position` (the last returned row's sort key) of `query`."""
    text = json.dumps([_VERSION, _fingerprint(query), position], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(token: str, query: tuple[str, ...], shape: tuple[type, ...]) -> list[Any] | None:
    """The position a token continues from (None for the first page); `shape` is its sort key's types."""
    if not token:
        return None
    try:
        version, fingerprint, position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise InvalidArgument("invalid page_token") from None
    if version != _VERSION or fingerprint != _fingerprint(query):
        raise InvalidArgument("page_token does not belong to this request")
    if (not isinstance(position, list) or len(position) != len(shape)
            or not all(type(value) is kind for value, kind in zip(position, shape, strict=True))):
        raise InvalidArgument("invalid page_token")
    return position
