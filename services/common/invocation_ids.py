"""Invocation ids: UUIDs, accepted in any spelling uuid.UUID reads (upper case, no dashes, braces,
urn:uuid:) and stored, compared and answered in one canonical form (lowercase, hyphenated)."""

from __future__ import annotations

import uuid

from services.common.errors import InvalidArgument


def canonical(text: str) -> str:
    """The canonical form of a UUID; INVALID_ARGUMENT for anything else."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidArgument(f"invocation id {text!r} is not a UUID") from None


def normalised(text: str) -> str:
    """The canonical form when `text` is a UUID, else `text` as given (it will read as missing)."""
    try:
        return canonical(text)
    except InvalidArgument:
        return text
