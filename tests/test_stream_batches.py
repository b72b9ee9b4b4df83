"""Gathering upload chunks into larger runs: every byte kept, in order, runs of at least the size."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.blobstore.streams import batches, coalesce


async def pieces(sizes: list[int]) -> AsyncIterator[bytes]:
    for i, size in enumerate(sizes):
        yield bytes([i]) * size


async def test_runs_reach_the_size_and_only_the_last_is_shorter() -> None:
    sizes = [16, 16, 40, 8, 8, 8, 5]
    runs = [run async for run in batches(pieces(sizes), 32)]
    assert [[len(c) for c in run] for run in runs] == [[16, 16], [40], [8, 8, 8, 5]]
    assert [len(run) for run in [r async for r in batches(pieces([10, 10]), 32)]] == [2]
    assert [run async for run in batches(pieces([]), 32)] == []


async def test_coalesce_keeps_every_byte_in_order() -> None:
    sizes = [7] * 20
    blocks = [block async for block in coalesce(pieces(sizes), 50)]
    assert [len(b) for b in blocks] == [56, 56, 28]
    assert b"".join(blocks) == b"".join(bytes([i]) * 7 for i in range(20))
