"""The CAS members' stores, kept in step with the membership: one BlobAccess per member.

A factory makes each member's store from its entry (address), so the pool holds whatever the
stack was built with: gRPC clients of shard processes in a cluster, the local disk store in the
all-in-one. A member whose address changes gets a new store; the old one is closed a while later,
after calls still using it end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from services.blobstore.access import BlobAccess
from services.blobstore.cluster.membership import Member

log = logging.getLogger(__name__)

T = TypeVar("T")
Connect = Callable[[Member], BlobAccess]
UNARY_TIMEOUT = 30.0  # a member that does not answer a unary call in this time counts as down
# Stores of members that left are closed this much later, after calls still using them end.
RETIRE_SECONDS = 60.0


class ShardPool:
    """member id -> the store of that member's current address."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._shards: dict[str, tuple[str, BlobAccess]] = {}
        self._retiring: dict[asyncio.Task[None], BlobAccess] = {}

    def sync(self, members: Iterable[Member]) -> None:
        """Connect to new members (or new addresses); retire stores nobody names any more."""
        wanted = list(members)
        addresses = {m.id: m.address for m in wanted}
        for member_id, (address, shard) in list(self._shards.items()):
            if addresses.get(member_id) != address:
                del self._shards[member_id]
                self._retire(member_id, shard)
        for member in wanted:
            if member.id not in self._shards:
                self._shards[member.id] = (member.address, self._connect(member))

    def __getitem__(self, member_id: str) -> BlobAccess:
        return self._shards[member_id][1]

    async def call(self, member_id: str, call: Callable[..., Awaitable[T]], *args: object) -> T:
        """`call(store, *args)` on a member's store, bounded in time."""
        async with asyncio.timeout(UNARY_TIMEOUT):
            return await call(self[member_id], *args)

    def items(self) -> list[tuple[str, BlobAccess]]:
        return [(member_id, shard) for member_id, (_, shard) in self._shards.items()]

    def _retire(self, member_id: str, shard: BlobAccess) -> None:
        async def later() -> None:
            await asyncio.sleep(RETIRE_SECONDS)
            await shard.close()

        log.info("closing the store of former member %s in %.0fs", member_id, RETIRE_SECONDS)
        task = asyncio.create_task(later())
        self._retiring[task] = shard
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def close(self) -> None:
        shards = [*(shard for _, shard in self._shards.values()), *self._retiring.values()]
        for task in list(self._retiring):
            task.cancel()
        self._shards.clear()
        await asyncio.gather(*(shard.close() for shard in shards))
