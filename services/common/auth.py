"""API keys, tenants and capabilities.

A key is 20 random alphanumeric characters (BuildBuddy's format), stored only as its SHA-256
(keys are random, so a slow password hash would add nothing). Capabilities are levels:
read < cas-write < cache-write < admin; each includes the ones below it. cas-write (BuildBuddy's
CAS-only capability) may upload blobs, which are verified against their digest and so cannot
poison anything, but not action results, which can.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import string
from dataclasses import dataclass

from services.common.errors import InvalidArgument, PermissionDenied, Unauthenticated

KEY_LENGTH = 20
_ALPHABET = string.ascii_letters + string.digits
_KEY = re.compile(r"[A-Za-z0-9]{20}")
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


class Capability(enum.Enum):
    """Values are what keys store (CAS_WRITE came last, hence its number); `rank` orders the levels."""

    READ = 1
    CACHE_WRITE = 2
    ADMIN = 3
    CAS_WRITE = 4

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @property
    def rank(self) -> int:
        return _RANKS.index(self)

    def includes(self, other: Capability) -> bool:
        return self.rank >= other.rank

    @classmethod
    def parse(cls, text: str) -> Capability:
        for capability in cls:
            if capability.label == text.strip().lower():
                return capability
        choices = ", ".join(c.label for c in _RANKS)
        raise InvalidArgument(f"unknown capability {text!r}: choose one of {choices}")


_RANKS = (Capability.READ, Capability.CAS_WRITE, Capability.CACHE_WRITE, Capability.ADMIN)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant every read and write is scoped to, and what the key may do."""

    tenant: str
    capability: Capability
    key_id: str

    def require(self, needed: Capability) -> None:
        if not self.capability.includes(needed):
            raise PermissionDenied(f"this API key ({self.key_id}) has the {self.capability.label} capability; "
                                   f"this call needs {needed.label}")


def new_key() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(KEY_LENGTH))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def redact(key: str) -> str:
    """How a key appears in messages and logs: first and last character only."""
    return f"{key[:1]}***{key[-1:]}" if key else "<empty>"


def check_key_format(key: str) -> str:
    key = key.strip()
    if not _KEY.fullmatch(key):
        raise Unauthenticated(f"Invalid API key {redact(key)}: API keys are 20 letters and digits")
    return key


def check_tenant(name: str) -> str:
    if not TENANT_PATTERN.fullmatch(name):
        raise InvalidArgument(f"invalid tenant name {name!r}: use 1-63 characters of a-z 0-9 . _ -, "
                              "starting with a letter or digit")
    return name
