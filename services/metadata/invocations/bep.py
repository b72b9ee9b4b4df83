"""Readers for Build Event Protocol values that come in a current and a deprecated form."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp


def usec(value: Timestamp | Duration, millis: int) -> int:
    """Microseconds of a Timestamp or Duration, falling back to the deprecated milliseconds field."""
    if value.seconds or value.nanos:
        return value.seconds * 1_000_000 + value.nanos // 1000
    return millis * 1000
