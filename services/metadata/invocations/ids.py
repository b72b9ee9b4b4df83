"""Identifiers on the API's wire: invocation UUIDs and the encoded target and action ids (DESIGN.md)."""

from __future__ import annotations

import base64
import binascii
import uuid

from services.common.errors import InvalidArgument

_PREFIX = "id::v1::"


def invocation_id(text: str) -> str:
    """The canonical (lowercase, hyphenated) form of a UUID; anything else is refused."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidArgument(f"invocation id {text!r} is not a UUID") from None


def encode(value: str) -> str:
    """base64url without padding of `id::v1::<value>`, as BuildBuddy's documented ids are."""
    return base64.urlsafe_b64encode((_PREFIX + value).encode()).decode().rstrip("=")


def decode(value: str) -> str:
    """The value inside an encoded id; a value that is not one is taken as given (a raw label)."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return value
    return text[len(_PREFIX):] if text.startswith(_PREFIX) else value


BUILD_ACTION = "build"


def test_run(shard: int, run: int, attempt: int) -> str:
    return f"test-S_{shard}-R_{run}-A_{attempt}"
