"""Reused zstd contexts.

Creating a zstd context costs far more than compressing a small blob, and a context may serve
one stream at a time, so streams borrow one from a pool and give it back when they finish.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import zstandard

T = TypeVar("T")

LEVEL = 1  # fast: the cache is bandwidth-bound, and Bazel decompresses whatever level we pick


class _Pool(Generic[T]):
    def __init__(self, factory: type[T]) -> None:
        self._factory = factory
        self._free: list[T] = []
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self) -> Iterator[T]:
        with self._lock:
            ctx = self._free.pop() if self._free else None
        if ctx is None:
            ctx = self._new()
        try:
            yield ctx
        finally:
            with self._lock:
                self._free.append(ctx)

    def _new(self) -> T:
        if self._factory is zstandard.ZstdCompressor:
            return self._factory(level=LEVEL)  # type: ignore[call-arg]
        return self._factory()


compressors: _Pool[zstandard.ZstdCompressor] = _Pool(zstandard.ZstdCompressor)
decompressors: _Pool[zstandard.ZstdDecompressor] = _Pool(zstandard.ZstdDecompressor)


def compress(data: bytes) -> bytes:
    with compressors.borrow() as cctx:
        return cctx.compress(data)
