"""The ingest protocol: exactly-once storage across retries, claims, finalization, and bad input."""

from __future__ import annotations

import uuid
from collections.abc import Collection

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import db, invocation_ids
from services.common.bep_keys import needs_redaction
from services.common.db import Sessions
from services.common.errors import FailedPrecondition, InvalidArgument
from services.gen.api.v1 import action_pb2, common_pb2, invocation_pb2, target_pb2
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations import batch, namedsets, queries
from services.metadata.invocations.ingest import STATUS_NAMES, InvocationStore
from services.metadata.invocations.namedsets import SetEntry
from services.metadata.models import Invocation, InvocationEvent, Target
from tests.invocations.support import (
    FAKE_KEY,
    completed,
    configured,
    finished,
    ingest,
    invocation_id_of,
    named_set,
    numbered,
    progress,
    recorded,
    shard_result,
    started,
)


async def stored_sequences(maker: Sessions) -> list[int]:
    async with maker() as session:
        return list(await session.scalars(select(InvocationEvent.sequence).order_by(InvocationEvent.sequence)))


async def status(maker: Sessions, tenant: str, invocation_id: str) -> str | None:
    """PARTIAL, COMPLETE or DISCONNECTED for the tenant's invocation; None when there is none."""
    async with maker() as session:
        found = await session.scalar(select(Invocation.status).where(
            Invocation.tenant == tenant, Invocation.invocation_id == invocation_ids.canonical(invocation_id)))
    return None if found is None else STATUS_NAMES[found]


async def test_resending_from_an_earlier_event_stores_each_event_once(maker: Sessions) -> None:
    events = recorded("test_ci")
    store = InvocationStore(maker)
    stream = await store.open("acme", invocation_id_of(events), "AK1", [FAKE_KEY])
    assert await stream.append(events[:20]) == 20
    assert await stream.append(events[10:30]) == 30, "10 duplicates dropped, 10 new stored"
    assert await stream.append(events[5:8]) == 30
    assert await stream.append(events[30:]) == len(events)
    assert await stream.finish() == "COMPLETE"
    assert await stored_sequences(maker) == list(range(1, len(events) + 1))


async def test_a_gap_is_refused_and_nothing_of_the_batch_is_stored(maker: Sessions) -> None:
    events = recorded("build_plain")
    stream = await InvocationStore(maker).open("acme", invocation_id_of(events), "AK1", [])
    await stream.append(events[:5])
    with pytest.raises(FailedPrecondition, match="gap"):
        await stream.append(events[4:6] + events[7:9])
    assert stream.last_sequence == 5 and await stored_sequences(maker) == [1, 2, 3, 4, 5]
    with pytest.raises(FailedPrecondition):
        await (await InvocationStore(maker).open("acme", str(uuid.uuid4()), "AK1", [])).append(events[1:3])


async def test_a_bad_payload_refuses_the_whole_batch(maker: Sessions) -> None:
    invocation_id = str(uuid.uuid4())
    stream = await InvocationStore(maker).open("acme", invocation_id, "AK1", [])
    good = numbered([started(invocation_id), configured("//:a")])
    with pytest.raises(InvalidArgument, match="event 3"):
        await stream.append([*good, (3, b"\xff\xff\xff")])
    assert await stored_sequences(maker) == [] and stream.last_sequence == 0
    assert await stream.append(good) == 2


async def test_invocation_ids_must_be_uuids(maker: Sessions) -> None:
    with pytest.raises(InvalidArgument, match="not a UUID"):
        await InvocationStore(maker).open("acme", "my-build", "AK1", [])


async def test_a_stream_resumes_on_another_replica_and_the_stale_one_is_refused(maker: Sessions,
                                                                                 database_url: str) -> None:
    events = recorded("test_ci")
    invocation_id = invocation_id_of(events)
    first = await InvocationStore(maker).open("acme", invocation_id, "AK1", [FAKE_KEY])
    await first.append(events[:25])  # up to the first TargetComplete's named set and beyond
    other_engine = db.create_engine(database_url)
    try:
        second = await InvocationStore(db.sessions(other_engine)).open("acme", invocation_id, "AK1", [FAKE_KEY])
        assert second.last_sequence == 25
        with pytest.raises(FailedPrecondition, match="newer stream"):
            await first.append(events[25:30])
        with pytest.raises(FailedPrecondition):
            await first.finish()
        await second.append(events[20:])
        assert await second.finish() == "COMPLETE"
    finally:
        await other_engine.dispose()
    assert await stored_sequences(maker) == list(range(1, len(events) + 1))
    whole = await ingest(InvocationStore(maker), "other", events, invocation_id, batch=len(events))
    assert whole.last_sequence == len(events)
    for tenant in ("acme", "other"):  # the resumed invocation is indexed exactly like a single stream
        answer = await queries.get_invocations(maker, tenant, _by_id(invocation_id))
        assert answer.invocation[0].commit_sha == "2" * 40 and answer.invocation[0].user == "fixture-user"
    async with maker() as session:
        counts = dict((await session.execute(
            select(Invocation.tenant, func.count()).join(Target, Target.invocation == Invocation.id)
            .group_by(Invocation.tenant))).all())
    assert counts == {"acme": 6, "other": 6}


def _by_id(invocation_id: str) -> invocation_pb2.GetInvocationRequest:
    return invocation_pb2.GetInvocationRequest(selector=invocation_pb2.InvocationSelector(invocation_id=invocation_id))


async def test_complete_disconnected_and_partial(maker: Sessions) -> None:
    store = InvocationStore(maker)
    invocation_id = str(uuid.uuid4())
    events = numbered([started(invocation_id), configured("//:a"), completed("//:a")])
    stream = await store.open("acme", invocation_id, "AK1", [])
    await stream.append(events)
    assert await status(maker, "acme", invocation_id) == "PARTIAL"
    assert await stream.finish() == "DISCONNECTED"
    assert await status(maker, "acme", invocation_id) == "DISCONNECTED"

    retry = await store.open("acme", invocation_id, "AK1", [])
    assert await status(maker, "acme", invocation_id) == "PARTIAL"
    await retry.append(events + numbered([finished(), progress()], first=4))
    assert await retry.finish() == "COMPLETE"

    again = await store.open("acme", invocation_id, "AK1", [])  # Bazel re-sends events whose acks were lost
    assert await again.append(events) == 5
    with pytest.raises(FailedPrecondition, match="already complete"):
        await again.append(numbered([progress()], first=6))
    assert await again.finish() == "COMPLETE" and await status(maker, "acme", invocation_id) == "COMPLETE"


async def test_tenants_never_collide(maker: Sessions) -> None:
    store = InvocationStore(maker)
    invocation_id = str(uuid.uuid4())
    await ingest(store, "acme", numbered([started(invocation_id), configured("//:a"), finished()]), invocation_id)
    other = await store.open("globex", invocation_id, "AK2", [])
    assert other.last_sequence == 0, "the same id in another tenant is another invocation"
    await other.append(numbered([started(invocation_id, "test")]))
    assert await status(maker, "acme", invocation_id) == "COMPLETE"
    assert await status(maker, "globex", invocation_id) == "PARTIAL"
    assert await status(maker, "initech", invocation_id) is None


async def test_progress_text_is_not_stored(maker: Sessions) -> None:
    invocation_id = str(uuid.uuid4())
    await ingest(InvocationStore(maker), "acme", numbered([started(invocation_id), progress("out", "err"),
                                                           finished()]), invocation_id)
    async with maker() as session:
        payload = await session.scalar(select(InvocationEvent.payload).where(InvocationEvent.sequence == 2))
    stored = bes.BuildEvent.FromString(payload or b"")
    assert stored.HasField("progress") and not stored.progress.stdout and not stored.progress.stderr


async def test_progress_text_is_dropped_before_the_redaction_scan(maker: Sessions,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what is stored is scanned for secrets: megabytes of console text never are (the logs service
    gets that text from the gateway, which redacts it there)."""
    scanned: list[int] = []

    def recording(data: bytes, secrets: Collection[str]) -> bool:
        scanned.append(len(data))
        return needs_redaction(data, secrets)

    monkeypatch.setattr(batch, "needs_redaction", recording)
    invocation_id = str(uuid.uuid4())
    text = f"fetching grpc://{FAKE_KEY}@cache.example\n" * 100_000
    await ingest(InvocationStore(maker), "acme", numbered([started(invocation_id), progress(text, text),
                                                           finished()]), invocation_id, secrets=[FAKE_KEY])
    assert scanned and max(scanned) < 1000
    async with maker() as session:
        payloads = list(await session.scalars(select(InvocationEvent.payload)))
    assert len(payloads) == 3 and not any(FAKE_KEY.encode() in p for p in payloads)


async def test_named_sets_evicted_from_the_cache_are_read_back(maker: Sessions,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(namedsets, "CACHE_FILES", 2)
    loaded: list[str] = []
    load = namedsets.NamedSets._load

    async def recording(self: namedsets.NamedSets, session: AsyncSession, set_ids: list[str]) -> dict[str, SetEntry]:
        loaded.extend(set_ids)
        return await load(self, session, set_ids)

    monkeypatch.setattr(namedsets.NamedSets, "_load", recording)
    invocation_id = str(uuid.uuid4())
    events = [started(invocation_id), named_set("a", ["a1", "a2"]), named_set("b", ["b1"], children=["a"]),
              named_set("c", ["c1", "c2"]), completed("//:a", file_sets=["a"]), completed("//:b", file_sets=["b"]),
              completed("//:c", file_sets=["c"]), finished()]
    await ingest(InvocationStore(maker), "acme", numbered(events), invocation_id)
    # two cached files hold one of these sets at a time, so each lookup evicts the set the next one needs
    assert loaded == ["a", "b", "a", "c"]
    actions = (await queries.get_actions(maker, "acme", action_pb2.GetActionRequest(
        selector=action_pb2.ActionSelector(invocation_id=invocation_id)))).action
    assert {a.target_label: [f.name for f in a.file] for a in actions} == {
        "//:a": ["a1", "a2"], "//:b": ["b1", "a1", "a2"], "//:c": ["c1", "c2"]}


async def test_a_broken_stream_is_disconnected_even_after_build_finished(maker: Sessions) -> None:
    store = InvocationStore(maker)
    invocation_id = str(uuid.uuid4())
    events = numbered([started(invocation_id), finished(), progress(), progress()])
    broken = await store.open("acme", invocation_id, "AK1", [])
    await broken.append(events[:2])
    await broken.disconnect()  # acks of the trailing events were lost: Bazel will retry
    assert await status(maker, "acme", invocation_id) == "DISCONNECTED"
    retry = await store.open("acme", invocation_id, "AK1", [])
    await broken.disconnect()  # late: the retry owns the invocation now, so nothing changes
    assert await status(maker, "acme", invocation_id) == "PARTIAL"
    assert await retry.append(events) == 4 and await retry.finish() == "COMPLETE"
    await retry.disconnect()
    assert await status(maker, "acme", invocation_id) == "COMPLETE"


async def test_odd_events_are_recorded_as_bazel_meant_them(maker: Sessions) -> None:
    invocation_id = str(uuid.uuid4())
    summary = bes.BuildEvent(id=bes.BuildEventId(test_summary=bes.BuildEventId.TestSummaryId(label="//never:seen")),
                             test_summary=bes.TestSummary(overall_status=bes.FLAKY, total_run_duration_millis=3))
    aborted = bes.BuildEvent(id=configured("//:skipped").id, aborted=bes.Aborted(reason=bes.Aborted.SKIPPED))
    events = [started(invocation_id), bes.BuildEvent(), configured("//:skipped"), aborted, summary,
              completed("//never:configured", file_sets=["no-such-set"]), configured("//:" + "x" * 700),
              named_set("a", ["a.txt"], children=["a", "missing"]), named_set("a", ["again.txt"]),
              completed("//:dup", file_sets=["a"]), shard_result("//unconfigured:test", 1),
              progress("x" * 5_000_000), finished()]
    await ingest(InvocationStore(maker), "acme", numbered(events), invocation_id)
    targets = {t.label: t for t in (await queries.get_targets(maker, "acme", target_pb2.GetTargetRequest(
        selector=target_pb2.TargetSelector(invocation_id=invocation_id)))).target}
    assert {label: common_pb2.Status.Name(t.status) for label, t in targets.items()} == {
        "//:skipped": "SKIPPED", "//never:seen": "FLAKY", "//never:configured": "BUILT", "//:dup": "BUILT"}
    assert targets["//never:seen"].timing.duration.ToMilliseconds() == 3
    actions = (await queries.get_actions(maker, "acme", action_pb2.GetActionRequest(
        selector=action_pb2.ActionSelector(invocation_id=invocation_id)))).action
    files = {a.target_label: [f.name for f in a.file] for a in actions}
    assert files == {"//never:configured": [], "//:dup": ["again.txt"], "//unconfigured:test": ["test.log"]}
    assert await stored_sequences(maker) == list(range(1, len(events) + 1))
