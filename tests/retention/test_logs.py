"""The logs janitor: a log goes once its window has passed and its invocation is gone, none is orphaned."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.common.db import Sessions
from services.common.durations import Duration
from services.common.errors import NotFound
from services.common.janitor import Sweep
from services.gen.api.v1 import log_pb2
from services.logs import store as log_store
from services.logs.expiry import CHUNK_WEIGHT, LogExpiry
from services.logs.models import LogChunk, LogPart, LogStream
from services.logs.store import LogStore
from services.metadata.retention import policies
from tests.retention.support import expiry, idle, now_plus, settings, stored_build

TEXT = "".join(f"line {i:03d} ✓\n" for i in range(100)).encode()  # ~1.4 KB: 14 chunks of 100 bytes


async def log_rows(maker: Sessions, tenant: str, invocation_id: str) -> int:
    async with maker() as session:
        total = 0
        for model in (LogStream, LogChunk, LogPart):
            total += await session.scalar(select(func.count()).select_from(model).where(
                model.tenant == tenant, model.invocation_id == invocation_id)) or 0
    return total


async def whole_log(maker: Sessions, tenant: str, invocation_id: str) -> str:
    store, text, token = LogStore(maker), [], ""
    while True:
        page = await store.get_log(tenant, log_pb2.GetLogRequest(
            selector=log_pb2.LogSelector(invocation_id=invocation_id), page_token=token))
        text.append(page.log.contents)
        if not page.next_page_token or page.next_page_token == token:
            return "".join(text)
        token = page.next_page_token


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_store, "CHUNK_BYTES", 100)


async def test_logs_go_with_their_invocations_and_none_are_orphaned(maker: Sessions) -> None:
    await policies.set_override(maker, "globex", invocations=Duration.parse("0"))
    gone = await stored_build(maker, "acme", 40, log=TEXT)
    kept = await stored_build(maker, "acme", 40, log=TEXT)
    await idle(maker, "acme", kept, -40, log=False)  # the invocation is active again; its log is not
    orphan = "5f1b7a44-0c7e-4d7e-9a53-0f3b2b3f0c11"  # a log whose invocation was never stored, still open
    writer = await LogStore(maker).open("acme", orphan)
    await writer.append([(1, TEXT + b"tail")])
    await idle(maker, "acme", orphan, 40)
    writer = await LogStore(maker).open("globex", gone)  # another tenant's log under the same id
    await writer.append([(1, TEXT)])
    await idle(maker, "globex", gone, 400)
    assert await log_rows(maker, "acme", gone) > 10

    metadata = expiry(maker)
    logs = LogExpiry(maker, metadata, settings(batch=3 * CHUNK_WEIGHT)[1])
    would = await logs.sweep(now_plus(), dry_run=True)  # metadata has not deleted yet: it counts as gone
    await metadata.sweep(now_plus())
    done = await logs.sweep(now_plus())

    assert await log_rows(maker, "acme", gone) == await log_rows(maker, "acme", orphan) == 0
    for missing in (gone, orphan):
        with pytest.raises(NotFound):
            await whole_log(maker, "acme", missing)
    assert await whole_log(maker, "acme", kept) == TEXT.decode()
    assert await whole_log(maker, "globex", gone) == TEXT.decode()
    assert done.rows == would.rows and set(done.rows) == {"acme"}
    assert done.rows["acme"]["log_streams"] == 2 and done.rows["acme"]["log_parts"] == 1
    assert done.largest_batch <= 3 * CHUNK_WEIGHT and done.batches >= 28 // 3


async def test_a_log_being_deleted_reads_shorter_never_with_holes(maker: Sessions) -> None:
    gone = await stored_build(maker, "acme", 40, log=TEXT)
    logs = LogExpiry(maker, expiry(maker), settings(batch=CHUNK_WEIGHT)[1])
    one = Sweep()
    async with maker.begin() as session:  # what one transaction of a sweep leaves: the last chunk gone
        _budget, finished = await logs._shrink(session, one, "acme", gone, now_plus(), CHUNK_WEIGHT)
    assert not finished and one.rows["acme"]["log_chunks"] == 1
    assert TEXT.decode().startswith(await whole_log(maker, "acme", gone))
    assert len(await whole_log(maker, "acme", gone)) < len(TEXT.decode())
