"""GetTargetHistory and GetFlakyTests on SQLite and PostgreSQL: filters, ranking, paging, tenancy."""

from __future__ import annotations

import uuid

import pytest

from services.common.db import Sessions
from services.common.errors import InvalidArgument
from services.gen.api.v1 import common_pb2
from services.gen.bbapi.api.v1 import insights_pb2
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.insights import flaky, history
from services.metadata.invocations import ids
from services.metadata.invocations.ingest import InvocationStore
from tests.insights.support import load
from tests.invocations.support import configured, finished, ingest, metadata, numbered, started, summary

T = "//pkg:t"


def runs(answer: insights_pb2.GetTargetHistoryResponse) -> list[tuple[str, str, str, str]]:
    return [(r.invocation_id, common_pb2.Status.Name(r.status), r.branch_name, r.commit_sha) for r in answer.run]


async def target_history(maker: Sessions, tenant: str = "acme", **request: object
                         ) -> insights_pb2.GetTargetHistoryResponse:
    return await history.get_target_history(maker, tenant, insights_pb2.GetTargetHistoryRequest(**request))  # type: ignore[arg-type]


async def test_history_lists_one_label_across_invocations_newest_first(maker: Sessions) -> None:
    on = {"main": [], "dev": []}  # type: dict[str, list[str]]
    for i, (branch, status) in enumerate([("main", bes.PASSED), ("dev", bes.FAILED), ("main", bes.FAILED),
                                          ("main", bes.PASSED)]):
        on[branch].append(await load(maker, tests=[(T, status), ("//pkg:other", bes.PASSED)],
                                     meta={"BRANCH_NAME": branch, "COMMIT_SHA": f"c{i}"}))
    everything = await target_history(maker, label=T)
    assert runs(everything) == [(on["main"][2], "PASSED", "main", "c3"), (on["main"][1], "FAILED", "main", "c2"),
                                (on["dev"][0], "FAILED", "dev", "c1"), (on["main"][0], "PASSED", "main", "c0")]
    newest = everything.run[0]
    assert newest.timing.duration.ToMilliseconds() == 1500 and newest.created.ToMicroseconds() > 0
    assert [r.invocation_id for r in (await target_history(maker, label=T, branch_name="main")).run] == list(
        reversed(on["main"]))
    # the encoded target id names the same label; a label nobody built has no history
    assert runs(await target_history(maker, label=ids.encode(T))) == runs(everything)
    assert runs(await target_history(maker, label="//pkg:never")) == []
    # a time range: from the second run (inclusive) to the newest (exclusive)
    created = [r.created for r in everything.run]
    window = insights_pb2.TimeRange(start_time=created[2], end_time=created[0])
    assert [r.invocation_id for r in (await target_history(maker, label=T, created=window)).run] == [
        on["main"][1], on["dev"][0]]
    with pytest.raises(InvalidArgument):
        await target_history(maker, label="")


async def test_history_pages_to_the_end_and_stays_in_its_tenant(maker: Sessions) -> None:
    made = [await load(maker, tests=[(T, bes.PASSED)]) for _ in range(5)]
    theirs = await load(maker, "other", tests=[(T, bes.FAILED)])
    seen, token, pages = [], "", 0
    while True:
        answer = await target_history(maker, label=T, page_size=2, page_token=token)
        seen += [r.invocation_id for r in answer.run]
        token, pages = answer.next_page_token, pages + 1
        if not token:
            break
    assert seen == list(reversed(made)) and pages == 3
    assert [r.invocation_id for r in (await target_history(maker, "other", label=T)).run] == [theirs]
    assert runs(await target_history(maker, "nobody", label=T)) == []
    first = await target_history(maker, label=T, page_size=2)
    with pytest.raises(InvalidArgument):  # a token is bound to its tenant and query
        await target_history(maker, "other", label=T, page_token=first.next_page_token)


async def test_a_branch_named_after_the_targets_reaches_them(maker: Sessions) -> None:
    """Workspace status may name the branch and commit late: the targets already stored take them."""
    invocation_id = str(uuid.uuid4())
    events = [started(invocation_id, "test"), configured(T, "sh_test rule"), summary(T, bes.PASSED),
              metadata(BRANCH_NAME="late", COMMIT_SHA="c9"), finished()]
    await ingest(InvocationStore(maker), "acme", numbered(events), invocation_id, batch=2)
    assert runs(await target_history(maker, label=T, branch_name="late")) == [(invocation_id, "PASSED", "late", "c9")]


async def flaky_tests(maker: Sessions, tenant: str = "acme", **request: object) -> insights_pb2.GetFlakyTestsResponse:
    return await flaky.get_flaky_tests(maker, tenant, insights_pb2.GetFlakyTestsRequest(**request))  # type: ignore[arg-type]


async def test_flaky_tests_are_those_reported_flaky_or_flipping_on_one_commit(maker: Sessions) -> None:
    a, b, c = "//:flips_often", "//:flaky_once", "//:steady"
    first = await load(maker, tests=[(a, bes.PASSED), (b, bes.FLAKY), (c, bes.PASSED)], meta={"COMMIT_SHA": "c1"})
    second = await load(maker, tests=[(a, bes.FAILED), (b, bes.PASSED), (c, bes.PASSED)], meta={"COMMIT_SHA": "c1"})
    third = await load(maker, tests=[(a, bes.TIMEOUT), (c, bes.FAILED)], meta={"COMMIT_SHA": "c2"})
    fourth = await load(maker, tests=[(a, bes.PASSED), (c, bes.PASSED)], meta={"COMMIT_SHA": "c2"})
    await load(maker, tests=[(c, bes.FAILED)], meta={"COMMIT_SHA": "c3"})  # failed once on its own commit: not flaky
    await load(maker, "other", tests=[(c, bes.FLAKY)], meta={"COMMIT_SHA": "c1"})  # another tenant's
    answer = await flaky_tests(maker)
    found = [(t.label, t.invocation_count, t.flaky_count, t.flipped_commit_count, list(t.invocation_id))
             for t in answer.flaky_test]
    # //:steady failed on c2 and passed on c2: flaky too, with the two invocations of c2
    assert found == [(a, 4, 0, 2, [fourth, third, second, first]), (c, 2, 0, 1, [fourth, third]),
                     (b, 1, 1, 0, [first])]
    assert answer.next_page_token == ""
    assert answer.flaky_test[0].last_seen == answer.flaky_test[1].last_seen
    other = await flaky_tests(maker, "other")
    assert [(t.label, t.flaky_count) for t in other.flaky_test] == [(c, 1)]
    assert (await flaky_tests(maker, "nobody")).flaky_test == []


async def test_flaky_tests_page_in_rank_order_over_a_window(maker: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    labels = [f"//:t{i}" for i in range(5)]
    for i, label in enumerate(labels):  # t0 flaky in one invocation, t1 in two, ...
        for _ in range(i + 1):
            await load(maker, tests=[(label, bes.FLAKY)])
    ranked, token = [], ""
    while True:
        answer = await flaky_tests(maker, page_size=2, page_token=token)
        ranked += [(t.label, t.invocation_count) for t in answer.flaky_test]
        if not (token := answer.next_page_token):
            break
    assert ranked == [(label, i + 1) for i, label in reversed(list(enumerate(labels)))]
    # at most MAX_INVOCATIONS ids each, newest first
    monkeypatch.setattr(flaky, "MAX_INVOCATIONS", 2)
    top = (await flaky_tests(maker, page_size=1)).flaky_test[0]
    assert top.label == "//:t4" and top.invocation_count == 5 and len(top.invocation_id) == 2
    # a window that ends before everything, or starts after it, holds nothing
    first = top.last_seen
    empty_window = insights_pb2.TimeRange(end_time=first)
    empty_window.end_time.FromMicroseconds(1)
    assert (await flaky_tests(maker, created=empty_window)).flaky_test == []
    later = insights_pb2.TimeRange()
    later.start_time.FromMicroseconds(first.ToMicroseconds() + 1)
    assert (await flaky_tests(maker, created=later)).flaky_test == []
    with pytest.raises(InvalidArgument):
        await flaky_tests(maker, page_token="bogus")
