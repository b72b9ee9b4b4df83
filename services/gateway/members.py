"""Connections to the CAS members, one channel each, kept in step with the membership.

Member channels reconnect quickly (at most 1 s apart): a shard that restarts must be usable
again within a health-check interval, not after grpc's default back-off of up to two minutes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from services.common.membership import Member
from services.common.rpc import insecure_channel
from services.gateway.remote import RemoteBlobAccess

log = logging.getLogger(__name__)

RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# Channels of members that left are closed this much later, after calls still using them end.
RETIRE_SECONDS = 60.0


class ShardPool:
    """member id -> RemoteBlobAccess for that member's current address."""

    def __init__(self) -> None:
        self._shards: dict[str, RemoteBlobAccess] = {}
        self._retiring: dict[asyncio.Task[None], RemoteBlobAccess] = {}

    def sync(self, members: Iterable[Member]) -> None:
        """Connect to new members (or new addresses); retire connections nobody names any more."""
        wanted = {m.id: m.address for m in members}
        for member_id, shard in list(self._shards.items()):
            if wanted.get(member_id) != shard.target:
                self._retire(self._shards.pop(member_id))
        for member_id, address in wanted.items():
            if member_id not in self._shards:
                channel = insecure_channel(address, RECONNECT_OPTIONS)
                self._shards[member_id] = RemoteBlobAccess(address, channel)

    def __getitem__(self, member_id: str) -> RemoteBlobAccess:
        return self._shards[member_id]

    def items(self) -> list[tuple[str, RemoteBlobAccess]]:
        return list(self._shards.items())

    def _retire(self, shard: RemoteBlobAccess) -> None:
        async def later() -> None:
            await asyncio.sleep(RETIRE_SECONDS)
            await shard.close()

        log.info("closing the connection to %s in %.0fs", shard.target, RETIRE_SECONDS)
        task = asyncio.create_task(later())
        self._retiring[task] = shard
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def close(self) -> None:
        shards = [*self._shards.values(), *self._retiring.values()]
        for task in list(self._retiring):
            task.cancel()
        self._shards.clear()
        await asyncio.gather(*(shard.close() for shard in shards))
