"""The sharded gateway stack over real CAS shards in this process: placement, failover, repair, migration."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import zstandard

from services.blobstore.access import BatchItem, Scope, read_all
from services.blobstore.cluster import migration
from services.blobstore.local.verify import digest_of
from services.common.errors import ApiError, InvalidArgument, NotFound, Unavailable
from services.common.hashing import DigestFunction
from services.common.resources import Compressor, Digest
from tests.cluster.inprocess import Stack, chunks, eventually

A = Scope("tenant-a")
B = Scope("tenant-b", "ci/linux")
A_BLAKE3 = Scope("tenant-a", "", DigestFunction.BLAKE3)


def blobs(count: int, size: int = 2000) -> list[bytes]:
    return [os.urandom(size + i) for i in range(count)]


def owned_by(stack: Stack, shard_id: str, count: int, size: int = 3000, scope: Scope = A) -> list[bytes]:
    """Random blobs that have `shard_id` among their owners (as digested in `scope`)."""
    found: list[bytes] = []
    while len(found) < count:
        data = os.urandom(size)
        if shard_id in {s.id for s in stack.owners(digest_of(data, scope.function))}:
            found.append(data)
    return found


async def test_blobs_are_stored_on_exactly_their_two_owners_and_read_back(stack: Stack) -> None:
    cluster = await stack.start(3)
    data = [*blobs(40), os.urandom(5 * 1024 * 1024 + 3)]
    for blob in data:
        assert await cluster.write(A, digest_of(blob), chunks(blob)) is False
    for blob in data:
        digest = digest_of(blob)
        assert await stack.holders(A, digest) == {s.id for s in stack.owners(digest)}
        assert await read_all(cluster, A, digest) == blob
        assert await stack.holders(B, digest) == set()  # another scope is another key
    big = digest_of(data[-1])
    ranged = b"".join([c async for c in cluster.read(A, big, offset=1_000_000, limit=3_000_000)])
    assert ranged == data[-1][1_000_000:4_000_000]
    assert await cluster.write(A, big, chunks(data[-1])) is True  # both replicas had it


async def test_with_two_zones_every_write_lands_in_both(stack: Stack) -> None:
    cluster = await stack.start(4, zones=("zone-a", "zone-b"))  # cas-0, cas-2 in zone-a; cas-1, cas-3 in zone-b
    zone = {s.id: s.zone for s in stack.shards.values()}
    data = blobs(60)
    for blob in data:
        assert await cluster.write(A, digest_of(blob), chunks(blob)) is False
    for blob in data:
        held = await stack.holders(A, digest_of(blob))
        assert len(held) == 2 and {zone[i] for i in held} == {"zone-a", "zone-b"}, held
        assert await read_all(cluster, A, digest_of(blob)) == blob
        assert await stack.holders(B, digest_of(blob)) == set()  # another tenant's scope holds nothing


async def test_find_missing_is_exact_across_shards(stack: Stack) -> None:
    cluster = await stack.start(3)
    stored, absent = blobs(30), blobs(20, size=999)
    for blob in stored:
        await cluster.write(A, digest_of(blob), chunks(blob))
    asked = [digest_of(b) for b in stored + absent]
    assert await cluster.find_missing(A, asked) == [digest_of(b) for b in absent]
    assert await cluster.find_missing(B, [digest_of(stored[0])]) == [digest_of(stored[0])]
    empty = digest_of(b"")
    assert await cluster.find_missing(A, [empty]) == []


async def test_batch_calls_split_by_owner_and_fail_per_item(stack: Stack) -> None:
    cluster = await stack.start(3)
    data = blobs(25, size=500)
    wrong = BatchItem(Digest(digest_of(b"x").hash, 1), b"y")
    results = await cluster.batch_write(B, [*(BatchItem(digest_of(b), b) for b in data), wrong])
    assert [r.error for r in results[:-1]] == [None] * len(data)
    assert results[-1].error is not None and "mismatch" in results[-1].error.message
    for blob in data:
        assert await stack.holders(B, digest_of(blob)) == {s.id for s in stack.owners(digest_of(blob))}
    assert await stack.holders(B, wrong.digest) == set()
    absent = digest_of(b"never written")
    read = await cluster.batch_read(B, [*(digest_of(b) for b in data), absent])
    assert [r.data for r in read[:-1]] == data
    assert isinstance(read[-1].error, NotFound)


async def test_action_results_are_placed_like_blobs(stack: Stack) -> None:
    cluster = await stack.start(3)
    actions = [digest_of(os.urandom(64)) for _ in range(10)]
    for index, action in enumerate(actions):
        await cluster.put_action_result(A, action, f"result {index}".encode())
    for index, action in enumerate(actions):
        assert await cluster.get_action_result(A, action) == f"result {index}".encode()
        owners = {s.id for s in stack.owners(action)}
        assert {s.id for s in stack.shards.values() if await s.holds_result(A, action)} == owners
    with pytest.raises(ApiError) as missing:
        await cluster.get_action_result(A, digest_of(b"no such action"))
    assert "no action result" in missing.value.message


async def test_wrong_uploads_are_refused_and_stored_nowhere(stack: Stack) -> None:
    cluster = await stack.start(3)
    data = os.urandom(100_000)
    lying = Digest("0" * 64, len(data))
    with pytest.raises(ApiError) as refused:
        await cluster.write(A, lying, chunks(data))
    assert "mismatch" in refused.value.message
    assert await stack.holders(A, lying) == set()

    async def broken() -> AsyncIterator[bytes]:
        yield data[:50_000]
        raise InvalidArgument("the client gave up")

    with pytest.raises(InvalidArgument):
        await cluster.write(A, digest_of(data), broken())
    assert await stack.holders(A, digest_of(data)) == set()


async def test_a_down_owner_is_replaced_by_a_stand_in_and_gets_its_copies_back(stack: Stack) -> None:
    cluster = await stack.start(3)
    down = stack.shards["cas-1"]
    data = owned_by(stack, "cas-1", 12)
    await down.stop()
    for blob in data[:6]:
        await cluster.write(A, digest_of(blob), chunks(blob))
    await cluster.batch_write(A, [BatchItem(digest_of(b), b) for b in data[6:]])
    action = digest_of(data[0])
    await cluster.put_action_result(A, action, b"made while cas-1 was down")
    for blob in data:
        digest = digest_of(blob)
        assert await stack.holders(A, digest) == {"cas-0", "cas-2"}  # the other owner and the stand-in
        assert await read_all(cluster, A, digest) == blob
    assert await cluster.find_missing(A, [digest_of(b) for b in data]) == []
    assert cluster.handoff.pending() == {"cas-1": len(data) + 1}

    await down.start()
    await eventually(lambda: _drained(stack))
    assert await _on_all_owners(stack, data)
    assert await down.holds_result(A, action)


async def test_members_wrongly_believed_down_still_serve_when_no_one_else_can(stack: Stack) -> None:
    """A health check that timed out on a busy machine must not fail a build the members would serve."""
    cluster = await stack.start(2)
    for member in ("cas-0", "cas-1"):
        cluster.liveness.failed(member, Unavailable("health check timed out"))
    data = blobs(4)
    await cluster.write(A, digest_of(data[0]), chunks(data[0]))
    await cluster.batch_write(A, [BatchItem(digest_of(b), b) for b in data[1:]])
    await cluster.put_action_result(A, digest_of(data[0]), b"result")
    assert await cluster.find_missing(A, [digest_of(b) for b in data]) == []
    assert [await read_all(cluster, A, digest_of(b)) for b in data] == data
    assert await cluster.get_action_result(A, digest_of(data[0])) == b"result"
    for blob in data:
        assert await stack.holders(A, digest_of(blob)) == {"cas-0", "cas-1"}

    await stack.shards["cas-0"].stop()
    await stack.shards["cas-1"].stop()
    with pytest.raises(Unavailable):  # really down: refused at once, as before
        await cluster.write(A, digest_of(b"new"), chunks(b"new"))


async def test_the_cluster_is_ready_while_some_member_is_up(stack: Stack) -> None:
    cluster = await stack.start(2)
    assert await cluster.ready()
    await stack.shards["cas-0"].stop()
    await cluster.liveness.probe()
    assert await cluster.ready()  # the other member still serves every key (R=2)
    await stack.shards["cas-1"].stop()
    await cluster.liveness.probe()
    assert not await cluster.ready()
    await stack.shards["cas-1"].start()

    async def probed_ready() -> bool:  # the channel reconnects with grpc's backoff
        await cluster.liveness.probe()
        return await cluster.ready()
    await eventually(probed_ready)


async def _drained(stack: Stack) -> bool:
    assert stack.cluster is not None
    return not stack.cluster.handoff.pending()


async def test_an_owner_dying_during_an_upload_is_replaced_after_the_stream(stack: Stack) -> None:
    cluster = await stack.start(3)
    data = owned_by(stack, "cas-2", 1, size=4 * 1024 * 1024)[0]
    digest = digest_of(data)

    async def dying_midway() -> AsyncIterator[bytes]:
        async for index, chunk in _enumerate(chunks(data)):
            if index == 20:
                await stack.shards["cas-2"].stop()
            yield chunk

    assert await cluster.write(A, digest, dying_midway()) is False
    holders = await stack.holders(A, digest)
    assert len(holders) == 2 and "cas-2" not in holders
    assert await read_all(cluster, A, digest) == data
    await stack.shards["cas-2"].start()
    await eventually(lambda: _drained(stack))
    assert await _on_all_owners(stack, [data])


async def _enumerate(stream: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    index = 0
    async for item in stream:
        yield index, item
        index += 1


async def test_reads_and_lookups_repair_an_owner_that_lost_a_blob(stack: Stack) -> None:
    cluster = await stack.start(3)
    first, second = blobs(2, size=70_000)
    for blob in (first, second):
        await cluster.write(A, digest_of(blob), chunks(blob))
    for blob in (first, second):
        primary = stack.owners(digest_of(blob))[0]
        assert primary.service is not None
        assert await primary.service.store.delete(A, digest_of(blob))
    assert await read_all(cluster, A, digest_of(first)) == first
    assert await cluster.find_missing(A, [digest_of(second)]) == []
    await eventually(lambda: _on_all_owners(stack, [first, second]))


async def _on_all_owners(stack: Stack, data: list[bytes], scope: Scope = A) -> bool:
    for blob in data:
        digest = digest_of(blob, scope.function)
        if not await stack.holders(scope, digest) >= {s.id for s in stack.owners(digest)}:
            return False
    return True


async def test_a_read_resumes_on_the_other_replica_when_its_member_dies(stack: Stack) -> None:
    cluster = await stack.start(3)
    data = os.urandom(48 * 1024 * 1024)
    digest = digest_of(data)
    await cluster.write(A, digest, chunks(data, 1024 * 1024))
    serving = stack.owners(digest)[0]
    received: list[bytes] = []
    async for chunk in cluster.read(A, digest):
        if not received:
            await serving.stop()
        received.append(chunk)
    assert b"".join(received) == data
    assert not cluster.liveness.is_up(serving.id)
    compressed = b"".join([c async for c in cluster.read(A, digest, compressor=Compressor.ZSTD)])
    assert zstandard.ZstdDecompressor().decompress(compressed) == data  # served by the live replica


async def test_growing_and_shrinking_moves_data_to_the_new_owners_without_loss(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migration, "SETTLE_SECONDS", 0.2)
    cluster = await stack.start(3)
    data = blobs(300, size=300)
    await cluster.batch_write(A, [BatchItem(digest_of(b), b) for b in data])
    actions = [digest_of(b) for b in data[:20]]
    for action in actions:
        await cluster.put_action_result(A, action, action.hash.encode())

    await stack.add_shards(1)
    generation = stack.write(["cas-0", "cas-1", "cas-2", "cas-3"], previous=["cas-0", "cas-1", "cas-2"])
    await cluster.reload()
    assert cluster.status().generation == generation and cluster.status().migrating
    late = blobs(30, size=400)
    for blob in late:  # writes during the migration follow the new table
        await cluster.write(A, digest_of(blob), chunks(blob))
    while cluster.status().migrating:
        assert await cluster.find_missing(A, [digest_of(b) for b in data + late]) == []
        await asyncio.sleep(0.05)
    progress = cluster.status()
    assert progress.scanned >= len(data) and progress.copied > 0 and progress.removed > 0

    stack.write(["cas-0", "cas-1", "cas-2", "cas-3"])
    await cluster.reload()
    await _assert_exactly_on_owners(stack, data + late, actions)

    stack.write(["cas-0", "cas-1", "cas-3"], previous=["cas-0", "cas-1", "cas-2", "cas-3"])
    await cluster.reload()
    await eventually(lambda: _migrated(stack))
    stack.write(["cas-0", "cas-1", "cas-3"])
    await cluster.reload()
    await _assert_exactly_on_owners(stack, data + late, actions)
    assert stack.shards["cas-2"].service is not None and not len(stack.shards["cas-2"].service.store.index)


async def _migrated(stack: Stack) -> bool:
    assert stack.cluster is not None
    return not stack.cluster.status().migrating


async def _assert_exactly_on_owners(stack: Stack, data: list[bytes], actions: list[Digest],
                                    scope: Scope = A) -> None:
    assert stack.cluster is not None
    for blob in data:
        digest = digest_of(blob, scope.function)
        assert await stack.holders(scope, digest) == {s.id for s in stack.owners(digest)}
        assert await read_all(stack.cluster, scope, digest) == blob
    for action in actions:
        assert await stack.cluster.get_action_result(scope, action) == action.hash.encode()
        holders = {s.id for s in stack.shards.values() if s.service and await s.holds_result(scope, action)}
        assert holders == {s.id for s in stack.owners(action)}


async def test_blake3_keys_keep_their_function_through_hand_off_and_migration(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migration, "SETTLE_SECONDS", 0.2)
    cluster = await stack.start(3)
    data = owned_by(stack, "cas-1", 12, scope=A_BLAKE3)  # most of them move to the added member below
    await stack.shards["cas-1"].stop()
    for blob in data[:6]:
        await cluster.write(A_BLAKE3, digest_of(blob, DigestFunction.BLAKE3), chunks(blob))
    await cluster.batch_write(A_BLAKE3, [BatchItem(digest_of(b, DigestFunction.BLAKE3), b) for b in data[6:]])
    actions = [digest_of(b, DigestFunction.BLAKE3) for b in data[:2]]
    for action in actions:
        await cluster.put_action_result(A_BLAKE3, action, action.hash.encode())
    with pytest.raises(InvalidArgument, match="hash mismatch"):  # verified with BLAKE3 on the shards
        await cluster.write(A_BLAKE3, digest_of(data[0]), chunks(data[0]))
    await stack.shards["cas-1"].start()
    await eventually(lambda: _drained(stack))
    assert await _on_all_owners(stack, data, A_BLAKE3)
    assert await cluster.find_missing(A, [digest_of(b) for b in data]) == [digest_of(b) for b in data]

    await stack.add_shards(1)
    stack.write(["cas-0", "cas-1", "cas-2", "cas-3"], previous=["cas-0", "cas-1", "cas-2"])
    await cluster.reload()
    await eventually(lambda: _migrated(stack))
    stack.write(["cas-0", "cas-1", "cas-2", "cas-3"])
    await cluster.reload()
    await _assert_exactly_on_owners(stack, data, actions, A_BLAKE3)
