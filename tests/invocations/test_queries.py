"""GetInvocation, GetTarget and GetAction: every selector, paging to the end, tenants, bad tokens."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from services.common.db import Sessions
from services.common.errors import InvalidArgument, NotFound
from services.gen.api.v1 import action_pb2, common_pb2, invocation_pb2, target_pb2
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations import ids, queries
from services.metadata.invocations.ingest import InvocationStore
from tests.invocations.support import (
    action_executed,
    blob_uri,
    completed,
    configured,
    finished,
    ingest,
    metadata,
    named_set,
    numbered,
    shard_result,
    started,
)

LABELS = [f"//pkg:t{i}" for i in range(10)]
Query = Callable[..., Awaitable[Any]]


def build_events(invocation_id: str, **build_metadata: str) -> list[bes.BuildEvent]:
    """Ten targets (tags "all", and "even" on every other one), nested output sets, tests in two configs."""
    events = [started(invocation_id, "test"), metadata(**build_metadata)]
    events += [configured(label, "sh_test rule", ["all", "even"] if i % 2 == 0 else ["all"])
               for i, label in enumerate(LABELS)]
    events += [named_set("shared", ["shared.txt"]), named_set("own", ["t0.out"], children=["shared"])]
    events += [completed(label, file_sets=["own"] if i == 0 else []) for i, label in enumerate(LABELS)]
    events += [shard_result(LABELS[1], shard) for shard in (1, 2, 3)]
    events += [shard_result(LABELS[1], 1, config="other"), action_executed(LABELS[2])]
    events += [finished()]
    return events


async def load(maker: Sessions, tenant: str = "acme", finish: bool = True, **build_metadata: str) -> str:
    invocation_id = str(uuid.uuid4())
    await ingest(InvocationStore(maker), tenant, numbered(build_events(invocation_id, **build_metadata)),
                 invocation_id, batch=7, finish=finish)
    return invocation_id


def invocations_by(invocation_id: str = "", commit_sha: str = "", page_token: str = "",
                   **flags: bool) -> invocation_pb2.GetInvocationRequest:
    return invocation_pb2.GetInvocationRequest(
        selector=invocation_pb2.InvocationSelector(invocation_id=invocation_id, commit_sha=commit_sha),
        page_token=page_token, **flags)


def targets_by(invocation_id: str, page_token: str = "", **selector: str) -> target_pb2.GetTargetRequest:
    return target_pb2.GetTargetRequest(selector=target_pb2.TargetSelector(invocation_id=invocation_id, **selector),
                                       page_token=page_token)


def actions_by(invocation_id: str, page_token: str = "", **selector: str) -> action_pb2.GetActionRequest:
    return action_pb2.GetActionRequest(selector=action_pb2.ActionSelector(invocation_id=invocation_id, **selector),
                                       page_token=page_token)


async def all_pages(query: Query, maker: Sessions, request: Any, field: str,
                    page_size: int) -> list[Any]:
    """Follow next_page_token to the end; every page but the last is full."""
    items: list[Any] = []
    while True:
        answer = await query(maker, "acme", request, page_size=page_size)
        page = list(getattr(answer, field))
        items += page
        if not answer.next_page_token:
            return items
        assert len(page) == page_size
        request.page_token = answer.next_page_token


async def test_get_invocation_selectors_order_and_paging(maker: Sessions) -> None:
    first = await load(maker, COMMIT_SHA="c1")
    second = await load(maker, COMMIT_SHA="c1")
    other = await load(maker, COMMIT_SHA="c2")
    get = queries.get_invocations
    [row] = (await get(maker, "acme", invocations_by(first))).invocation
    assert (row.id.invocation_id, row.commit_sha, row.command, row.pattern) == (first, "c1", "test", "//...")
    assert (row.success, row.bazel_exit_code, row.duration_usec) == (True, "SUCCESS", 2_000_000)
    assert row.invocationStatus == invocation_pb2.COMPLETE_INVOCATION_STATUS
    assert row.created_at_usec <= row.updated_at_usec and not row.build_metadata and not row.artifacts
    newest_first = [i.id.invocation_id for i in (await get(maker, "acme", invocations_by(commit_sha="c1"))).invocation]
    assert newest_first == [second, first]
    assert await all_pages(get, maker, invocations_by(commit_sha="c1"), "invocation", 1) == (
        await get(maker, "acme", invocations_by(commit_sha="c1"))).invocation[:]
    assert [i.id.invocation_id for i in (await get(maker, "acme", invocations_by(other, "c2"))).invocation] == [other]
    for empty in (invocations_by(other, "c1"), invocations_by(str(uuid.uuid4())), invocations_by("not-a-uuid"),
                  invocations_by(commit_sha="nope")):
        answer = await get(maker, "acme", empty)
        assert not answer.invocation and not answer.next_page_token
    assert not (await get(maker, "globex", invocations_by(first))).invocation
    assert not (await get(maker, "globex", invocations_by(commit_sha="c1"))).invocation
    with pytest.raises(InvalidArgument, match="invocation_id or commit_sha"):
        await get(maker, "acme", invocations_by())


async def test_get_invocation_includes(maker: Sessions) -> None:
    parent = await load(maker, COMMIT_SHA="c1", RUN_ID="run-1", ROLE="CI")
    child = await load(maker, PARENT_INVOCATION_ID=parent)
    run_child = await load(maker, RUN_ID="run-2", PARENT_RUN_ID="run-1")
    await load(maker, RUN_ID="run-1")  # the same run, not a child
    await load(maker, "globex", PARENT_INVOCATION_ID=parent)
    await load(maker, "globex", PARENT_RUN_ID="run-1")
    [row] = (await queries.get_invocations(maker, "acme", invocations_by(
        parent, include_metadata=True, include_artifacts=True, include_child_invocations=True))).invocation
    assert {(m.key, m.value) for m in row.build_metadata} == {("COMMIT_SHA", "c1"), ("RUN_ID", "run-1"),
                                                              ("ROLE", "CI")}
    assert [(a.name, a.uri, a.hash, a.size_bytes) for a in row.artifacts] == [
        ("shared.txt", blob_uri("shared.txt"), blob_uri("shared.txt").split("/")[-2], 10),
        ("t0.out", blob_uri("t0.out"), blob_uri("t0.out").split("/")[-2], 6)]
    assert [c.invocation_id for c in row.child_invocations] == [child, run_child]
    assert row.role == "CI"


async def test_an_invocation_is_visible_while_it_streams(maker: Sessions) -> None:
    invocation_id = await load(maker, finish=False, COMMIT_SHA="live")
    [row] = (await queries.get_invocations(maker, "acme", invocations_by(commit_sha="live"))).invocation
    assert row.id.invocation_id == invocation_id and row.invocationStatus == invocation_pb2.PARTIAL_INVOCATION_STATUS
    assert len((await queries.get_targets(maker, "acme", targets_by(invocation_id))).target) == len(LABELS)


async def test_get_target_selectors(maker: Sessions) -> None:
    invocation_id = await load(maker)
    get = queries.get_targets

    async def labels(**selector: str) -> list[str]:
        return [t.label for t in (await get(maker, "acme", targets_by(invocation_id, **selector))).target]

    assert await labels() == sorted(LABELS)
    assert await labels(label=LABELS[3]) == [LABELS[3]]
    assert await labels(label="//pkg:t") == []
    assert await labels(tag="even") == sorted(LABELS[::2])
    assert await labels(tag="all", label=LABELS[1]) == [LABELS[1]], "label wins over tag, as in the reference"
    assert await labels(target_id=ids.encode(LABELS[4])) == [LABELS[4]]
    assert await labels(target_id=LABELS[4]) == [LABELS[4]], "the raw label is accepted as a target id"
    [target] = (await get(maker, "acme", targets_by(invocation_id, label=LABELS[1]))).target
    assert (target.id.invocation_id, target.id.target_id) == (invocation_id, ids.encode(LABELS[1]))
    assert (target.status, target.rule_type, target.language, list(target.tag)) == (
        common_pb2.Status.BUILT, "sh_test", "sh", ["all"])
    assert await all_pages(get, maker, targets_by(invocation_id), "target", 3) == list(
        (await get(maker, "acme", targets_by(invocation_id))).target)
    assert [t.label for t in await all_pages(get, maker, targets_by(invocation_id, tag="even"), "target", 2)] == (
        sorted(LABELS[::2]))


async def test_get_action_selectors(maker: Sessions) -> None:
    invocation_id = await load(maker)
    get = queries.get_actions

    async def found(**selector: str) -> list[tuple[str, str, str]]:
        answer = await get(maker, "acme", actions_by(invocation_id, **selector))
        return [(a.target_label, a.id.configuration_id, ids.decode(a.id.action_id)) for a in answer.action]

    everything = await found()
    assert len(everything) == len(LABELS) + 4 + 1
    assert await found(target_id=ids.encode(LABELS[1])) == await found(target_id=LABELS[1]) == [
        (LABELS[1], "cfg", "build"), (LABELS[1], "cfg", "test-S_1-R_1-A_1"), (LABELS[1], "cfg", "test-S_2-R_1-A_1"),
        (LABELS[1], "cfg", "test-S_3-R_1-A_1"), (LABELS[1], "other", "test-S_1-R_1-A_1")]
    assert await found(target_label=LABELS[1], configuration_id="other") == [(LABELS[1], "other", "test-S_1-R_1-A_1")]
    assert await found(action_id=ids.encode("test-S_2-R_1-A_1")) == [(LABELS[1], "cfg", "test-S_2-R_1-A_1")]
    assert await found(target_label=LABELS[2], action_id=ids.encode("test-S_2-R_1-A_1")) == []
    assert await found(target_label=LABELS[2], target_id=ids.encode(LABELS[3])) == []
    assert len(await found(action_id=ids.encode("build"))) == len(LABELS) + 1

    answer = await get(maker, "acme", actions_by(invocation_id, target_label=LABELS[0]))
    assert [(f.name, f.size_bytes) for f in answer.action[0].file] == [("t0.out", 6), ("shared.txt", 10)]
    shard = (await get(maker, "acme", actions_by(invocation_id, action_id=ids.encode("test-S_3-R_1-A_1")))).action[0]
    assert (shard.shard, shard.run, shard.attempt, [f.name for f in shard.file]) == (3, 1, 1, ["test.log"])
    assert shard.id.target_id == ids.encode(LABELS[1]) and shard.id.invocation_id == invocation_id
    [stderr] = (await get(maker, "acme", actions_by(invocation_id, target_label=LABELS[2]))).action[-1].file
    assert stderr.name == "stderr" and len(stderr.hash) == 64
    paged = await all_pages(get, maker, actions_by(invocation_id), "action", 4)
    assert [(a.target_label, ids.decode(a.id.action_id), a.id.configuration_id) for a in paged] == [
        (label, action, config) for label, config, action in everything]


async def test_action_pages_are_capped_by_their_files(maker: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    invocation_id = await load(maker)
    everything = list((await queries.get_actions(maker, "acme", actions_by(invocation_id))).action)
    monkeypatch.setattr(queries, "ACTION_PAGE_FILES", 2)
    request, pages = actions_by(invocation_id), []
    while True:
        answer = await queries.get_actions(maker, "acme", request)
        pages.append(list(answer.action))
        if not answer.next_page_token:
            break
        request.page_token = answer.next_page_token
    assert all(sum(len(a.file) for a in page) <= 2 for page in pages) and len(pages) > 2
    assert [a for page in pages for a in page] == everything


async def test_tenants_and_bad_requests(maker: Sessions) -> None:
    invocation_id = await load(maker)
    selected: list[tuple[Query, Any]] = [(queries.get_targets, targets_by(invocation_id)),
                                         (queries.get_actions, actions_by(invocation_id))]
    for query, request in selected:
        with pytest.raises(NotFound):
            await query(maker, "globex", request)
        for missing in (str(uuid.uuid4()), "not-a-uuid"):
            request.selector.invocation_id = missing
            with pytest.raises(NotFound):
                await query(maker, "acme", request)
        request.selector.invocation_id = ""
        with pytest.raises(InvalidArgument, match="must contain a valid invocation_id"):
            await query(maker, "acme", request)
    token = (await queries.get_targets(maker, "acme", targets_by(invocation_id), page_size=1)).next_page_token
    tokened: list[tuple[Query, Any]] = [
        (queries.get_targets, targets_by(invocation_id, page_token="garbage")),
        (queries.get_targets, targets_by(invocation_id, tag="all", page_token=token)),
        (queries.get_actions, actions_by(invocation_id, page_token=token)),
        (queries.get_invocations, invocations_by(invocation_id, page_token=token))]
    for query, request in tokened:
        with pytest.raises(InvalidArgument, match="page_token"):
            await query(maker, "acme", request)
    with pytest.raises(InvalidArgument, match="page_token"):
        await queries.get_targets(maker, "globex", targets_by(invocation_id, page_token=token))


async def test_pages_with_artifacts_get_shorter_not_larger(maker: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    older, newer = await load(maker, COMMIT_SHA="c"), await load(maker, COMMIT_SHA="c")
    monkeypatch.setattr(queries, "MAX_ARTIFACTS", 1)
    pages = await all_pages(queries.get_invocations, maker, invocations_by(commit_sha="c", include_artifacts=True),
                            "invocation", 1)
    assert [(i.id.invocation_id, len(i.artifacts)) for i in pages] == [(newer, 1), (older, 1)]
    first = await queries.get_invocations(maker, "acme", invocations_by(commit_sha="c", include_artifacts=True))
    assert len(first.invocation) == 1 and first.next_page_token, "the page stops once it holds MAX_ARTIFACTS"
