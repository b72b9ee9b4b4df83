"""A 100,000-target build through the gRPC port of `bbapi serve`: bounded memory, pages like a small build.

The bound: ingesting it raises the server's peak RSS by less than MEMORY_BOUND_MIB over what the server
had used before it. What the gateway buffers is capped by events (MAX_PENDING_EVENTS, BATCH_EVENTS x
MAX_IN_FLIGHT), the metadata service's named-set cache by files (CACHE_FILES); nothing is kept per
target, so the build's events (7 MB here) never sit in memory at once. ("Pages like a small one" is
checked by the database's own plans, as in tests/invocations/test_large.py: no timed assertions.)
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from services.common import db
from services.gen.api.v1 import action_pb2, target_pb2
from tests.invocations.plans import assert_index_walk
from tests.invocations.support import completed, configured, finished, named_set, started
from tests.invocations.test_large import page_plan
from tests.support.bes import Publisher
from tests.support.servers import ServeProcess

TARGETS = 100_000
MEMORY_BOUND_MIB = 64  # measured: +25 MiB for the 120,002 events of this build


def label(i: int) -> str:
    return f"//pkg{i // 1000:03d}/sub:target_{i:06d}"


def build(invocation_id: str, targets: int) -> list[bytes]:
    """Every target configured; one in ten completed with an output set (an action each)."""
    events = [started(invocation_id)]
    for i in range(targets):
        events.append(configured(label(i), tags=["third"] if i % 3 == 0 else []))
        if i % 10 == 0:
            events += [named_set(str(i), [f"out{i}"]), completed(label(i), file_sets=[str(i)])]
    events.append(finished())
    return [e.SerializeToString() for e in events]


async def plans(database: Path, tenant: str, large: str, small: str, tokens: tuple[str, str]) -> list[str]:
    engine = db.create_engine(db.sqlite_url(database))
    try:
        maker = db.sessions(engine)
        targets = [target_pb2.GetTargetRequest(selector=target_pb2.TargetSelector(invocation_id=large),
                                               page_token=tokens[0]),
                   target_pb2.GetTargetRequest(selector=target_pb2.TargetSelector(invocation_id=small))]
        actions = [action_pb2.GetActionRequest(selector=action_pb2.ActionSelector(invocation_id=large),
                                               page_token=tokens[1]),
                   action_pb2.GetActionRequest(selector=action_pb2.ActionSelector(invocation_id=small))]
        requests: list[target_pb2.GetTargetRequest | action_pb2.GetActionRequest] = [*targets, *actions]
        return [await page_plan(maker, request, tenant) for request in requests]
    finally:
        await engine.dispose()


def test_a_100k_target_build_ingests_in_bounded_memory_and_pages_like_a_small_one(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, extra=["--log-level", "warning"]).start()
    try:
        key = serve.admin_key
        assert key is not None
        publisher = Publisher(serve.grpc_target, key)
        small = str(uuid.uuid4())
        assert publisher.publish(small, build(small, 100))[-1] == 100 + 10 * 2 + 3
        before = serve.peak_rss_mib()
        large = str(uuid.uuid4())
        events = build(large, TARGETS)
        assert publisher.publish(large, events) == list(range(1, len(events) + 2))
        growth = serve.peak_rss_mib() - before
        print(f"peak RSS {before:.0f} MiB before, +{growth:.0f} MiB ingesting {len(events)} events")
        assert growth < MEMORY_BOUND_MIB, f"peak RSS grew by {growth:.0f} MiB"

        second = []  # a page after the first: keyset pages all run the same statement from another key
        for method, field in (("GetTarget", "target"), ("GetAction", "action")):
            answer = serve_api(serve, method, {"selector": {"invocation_id": large}})
            assert answer[field] and answer["nextPageToken"]
            second.append(str(answer["nextPageToken"]))
        for plan in asyncio.run(plans(tmp_path / "metadata.db", "default", large, small, (second[0], second[1]))):
            assert_index_walk(plan)
    finally:
        serve.stop()


def serve_api(serve: ServeProcess, method: str, body: dict[str, object]) -> dict[str, list[object] | str]:
    import httpx

    response = httpx.post(f"http://127.0.0.1:{serve.http_port}/api/v1/{method}", json=body,
                          headers={"x-buildbuddy-api-key": serve.admin_key or ""}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
