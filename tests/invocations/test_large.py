"""A 50,000-target invocation streams in with bounded batches and pages like a small one.

"Like a small one" is checked structurally, not by timing (timings belong in bench/api.py): the
database's own plan for every page query walks an index in the page's order, with no sort and
no scan of the rest of the invocation.
"""

from __future__ import annotations

import uuid

from services.common.db import Sessions
from services.gen.api.v1 import action_pb2, target_pb2
from services.metadata.invocations import queries
from services.metadata.invocations.ingest import InvocationStore
from tests.invocations.plans import assert_index_walk, plan_of
from tests.invocations.support import completed, configured, finished, ingest, named_set, numbered, started

LARGE, SMALL = 50_000, 100


def label(i: int) -> str:
    return f"//pkg{i // 1000:02d}/sub:target_{i:05d}"


async def load(maker: Sessions, targets: int) -> str:
    """Every target configured (tagged "third" on every third); the first 100 complete with outputs."""
    invocation_id = str(uuid.uuid4())
    events = [started(invocation_id)]
    events += [configured(label(i), tags=["third"] if i % 3 == 0 else []) for i in range(targets)]
    for i in range(min(targets, 100)):
        events += [named_set(str(i), [f"out{i}"]), completed(label(i), file_sets=[str(i)])]
    events.append(finished())
    await ingest(InvocationStore(maker), "acme", numbered(events), invocation_id, batch=500)
    return invocation_id


async def page_plan(maker: Sessions, request: target_pb2.GetTargetRequest | action_pb2.GetActionRequest,
                    tenant: str = "acme") -> str:
    """The database's plan for the statement that reads a page of targets (or of actions)."""
    if isinstance(request, target_pb2.GetTargetRequest):
        return await plan_of(maker, lambda: queries.get_targets(maker, tenant, request, page_size=100),
                             "invocation_target")
    return await plan_of(maker, lambda: queries.get_actions(maker, tenant, request, page_size=100),
                         "invocation_actions")


def page(invocation_id: str, token: str = "", tag: str = "") -> target_pb2.GetTargetRequest:
    return target_pb2.GetTargetRequest(selector=target_pb2.TargetSelector(invocation_id=invocation_id, tag=tag),
                                       page_token=token)


async def test_a_large_invocation_pages_to_the_end_at_a_flat_cost(maker: Sessions) -> None:
    large, small = await load(maker, LARGE), await load(maker, SMALL)
    request = page(large)
    labels: list[str] = []
    middle = ""
    while True:
        answer = await queries.get_targets(maker, "acme", request)
        labels += [t.label for t in answer.target]
        if len(labels) == LARGE // 2:
            middle = answer.next_page_token
        if not answer.next_page_token:
            break
        request.page_token = answer.next_page_token
    assert labels == [label(i) for i in range(LARGE)]

    first_half = [label(i) for i in range(0, LARGE // 2, 3)]
    tagged = await queries.get_targets(maker, "acme", page(large, tag="third"), page_size=len(first_half))
    assert [t.label for t in tagged.target] == first_half and tagged.next_page_token

    for request in (page(large, middle), page(small), page(large, tagged.next_page_token, "third"),
                    page(small, tag="third")):
        assert_index_walk(await page_plan(maker, request))
