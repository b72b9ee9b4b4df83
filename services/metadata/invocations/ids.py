"""Identifiers on the API's wire: the encoded target and action ids (DESIGN.md); invocation ids are
services.common.invocation_ids."""

from __future__ import annotations

import base64
import binascii

_PREFIX = "id::v1::"


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
