"""The volume under the local store: its free space caps the budget, and a full disk is an answer.

The configured budget is what the cache may hold, but the volume may be smaller, or shared (the
all-in-one keeps its database and logs beside the blobs). So the store's limit is also capped at
`stored + free - min_free`: the data it holds plus what the volume can still take, less a margin
(`min_free`). Eviction thus starts before the disk fills. Free space is read with `statvfs` at
most every `refresh_seconds`, and at once whenever a write would not fit the last reading (near
the edge every write looks); the packed store's reusable pages count as free, since a new item
fills them before the database file grows.

A write that still meets a full disk (another process filled it since the last reading) fails
with RESOURCE_EXHAUSTED, and the store leaves nothing of it behind (services.blobstore.local).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ByteSize, Field

from services.blobstore.local import metrics
from services.common.errors import ResourceExhausted

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
DEFAULT_MIN_FREE = 256 * 1024 * 1024


def min_free_field() -> Any:
    """The `min_free_bytes` setting of every process that runs a local store."""
    return Field(ByteSize(DEFAULT_MIN_FREE), description="free space the cache leaves on its volume: the budget "
                                                         "shrinks to fit, so eviction starts before the disk fills")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer can still put on the volume holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def is_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in FULL_ERRNOS


def full(path: Path, detail: str) -> ResourceExhausted:
    """The error a write gets when the volume is out of space."""
    metrics.DISK_FULL_WRITES.inc()
    return ResourceExhausted(f"disk full: {detail}; the volume holding {path} has {free_bytes(path)} bytes free "
                             "(free space, or lower the cache budget)")


class VolumeBudget:
    """The configured budget capped by what the volume can still hold."""

    def __init__(self, root: Path, configured: int, min_free: int, reusable: Callable[[], int],
                 refresh_seconds: float = 1.0) -> None:
        self.root = root
        self.configured = configured
        self.min_free = min_free
        self.reusable = reusable  # bytes already on the volume that new data reuses (freed database pages)
        self.refresh_seconds = refresh_seconds
        self._cap: int | None = None
        self._read_at = 0.0

    def limit(self, stored: int, wanted: int) -> int:
        """The budget for `stored` bytes held plus `wanted` more (in progress or about to be written)."""
        now = time.monotonic()
        if self._cap is None or now - self._read_at >= self.refresh_seconds or stored + wanted > self._cap:
            self._cap = stored + free_bytes(self.root) + self.reusable() - self.min_free
            self._read_at = now
        return max(0, min(self.configured, self._cap))
