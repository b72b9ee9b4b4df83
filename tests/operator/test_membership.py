"""The CAS membership document and the shard-count change protocol, as the operator runs them."""

from __future__ import annotations

import hashlib
import json

from bbapi_operator import membership
from bbapi_operator.membership import plan
from bbapi_operator.meta import Owner

from services.blobstore.cluster import resize
from services.blobstore.cluster.membership import Progress, generation_of
from services.blobstore.cluster.resize import Phase

OWNER = Owner(name="demo", namespace="builds", uid="uid-1")


def _doc(shards: int, previous: int | None = None, replication: int = 2) -> str:
    old = None if previous is None else membership.members(OWNER, previous)
    return resize.document(replication, membership.members(OWNER, shards), old)


def _done(text: str) -> list[Progress]:
    return [Progress(generation_of(text), migrating=False, copied=10, scanned=10)]


def test_document_matches_the_gateway_contract() -> None:
    document = json.loads(_doc(2))
    assert document == {"replication": 2, "previous": None, "members": [
        {"id": "demo-cas-0", "address": "demo-cas-0.demo-cas.builds.svc:7001", "weight": 1.0},
        {"id": "demo-cas-1", "address": "demo-cas-1.demo-cas.builds.svc:7001", "weight": 1.0}]}
    moving = json.loads(_doc(3, previous=2))
    assert moving["previous"] == {"members": document["members"]}
    assert generation_of(_doc(2)) == hashlib.sha256(_doc(2).encode()).hexdigest()


def test_first_plan_writes_the_configured_shards() -> None:
    first = plan(OWNER, 3, 2, None, ready_shards=0)
    assert (first.text, first.replicas, first.phase, first.settled) == (_doc(3), 3, Phase.STABLE, True)


def test_unreadable_document_is_rewritten() -> None:
    assert plan(OWNER, 3, 2, "{not json", ready_shards=3).text == _doc(3)
    assert plan(OWNER, 3, 2, '{"members": 5}', ready_shards=3).text == _doc(3)


def test_grow_raises_pods_first_then_migrates_then_settles() -> None:
    waiting = plan(OWNER, 4, 2, _doc(3), ready_shards=3)
    assert (waiting.text, waiting.replicas, waiting.phase) == (_doc(3), 4, Phase.WAITING_FOR_SHARDS)
    assert not waiting.settled

    started = plan(OWNER, 4, 2, _doc(3), ready_shards=4)
    assert (started.text, started.replicas, started.phase) == (_doc(4, previous=3), 4, Phase.MIGRATING)

    busy = [Progress(generation_of(started.text), migrating=True, copied=3, scanned=9)]
    copying = plan(OWNER, 4, 2, started.text, ready_shards=4, reports=busy)
    assert (copying.text, copying.phase, copying.copied, copying.scanned) == (started.text, Phase.MIGRATING, 3, 9)

    done = plan(OWNER, 4, 2, started.text, ready_shards=4, reports=_done(started.text))
    assert (done.text, done.replicas, done.phase, done.settled) == (_doc(4), 4, Phase.STABLE, True)


def test_shrink_keeps_every_old_pod_until_the_copy_is_done() -> None:
    started = plan(OWNER, 3, 2, _doc(4), ready_shards=4)
    assert (started.text, started.replicas, started.phase) == (_doc(3, previous=4), 4, Phase.MIGRATING)

    for reports in ([], [Progress("stale-generation", migrating=False)],
                    [*_done(started.text), Progress(generation_of(started.text), migrating=True)]):
        still = plan(OWNER, 3, 2, started.text, ready_shards=4, reports=reports)
        assert (still.text, still.replicas) == (started.text, 4), reports

    done = plan(OWNER, 3, 2, started.text, ready_shards=4, reports=_done(started.text))
    assert (done.text, done.replicas, done.settled) == (_doc(3), 3, True)


def test_a_new_change_waits_for_the_copy_in_flight() -> None:
    moving = _doc(4, previous=3)
    again = plan(OWNER, 6, 2, moving, ready_shards=4)
    assert (again.text, again.replicas, again.phase) == (moving, 6, Phase.WAITING_FOR_MIGRATION)
    back = plan(OWNER, 2, 2, moving, ready_shards=4)
    assert (back.text, back.replicas, back.phase) == (moving, 4, Phase.WAITING_FOR_MIGRATION)
    finished = plan(OWNER, 2, 2, moving, ready_shards=4, reports=_done(moving))
    assert (finished.text, finished.replicas, finished.settled) == (_doc(4), 4, False)  # next: shrink to 2


def test_replication_change_copies_to_the_new_replicas_then_settles() -> None:
    changed = plan(OWNER, 3, 3, _doc(3, replication=2), ready_shards=3)
    assert (changed.text, changed.phase, changed.replicas) == (_doc(3, previous=3, replication=3), Phase.MIGRATING, 3)
    done = plan(OWNER, 3, 3, changed.text, ready_shards=3, reports=_done(changed.text))
    assert (done.text, done.settled) == (_doc(3, replication=3), True)


def test_progress_is_reported_exactly_while_copying() -> None:
    """Every branch of `plan`: copied/scanned are numbers in the copying phases, None otherwise."""
    moving = _doc(4, previous=3)
    plans = [plan(OWNER, 3, 2, None, ready_shards=0), plan(OWNER, 3, 2, _doc(3), ready_shards=3),
             plan(OWNER, 4, 2, _doc(3), ready_shards=3), plan(OWNER, 4, 2, _doc(3), ready_shards=4),
             plan(OWNER, 4, 2, moving, ready_shards=4), plan(OWNER, 6, 2, moving, ready_shards=4),
             plan(OWNER, 4, 2, moving, ready_shards=4, reports=_done(moving))]
    assert {p.phase for p in plans} == set(Phase)
    for p in plans:
        copying = p.phase in (Phase.MIGRATING, Phase.WAITING_FOR_MIGRATION)
        assert (p.copied is not None, p.scanned is not None) == (copying, copying), p


def test_in_flight_and_copy_done() -> None:
    assert not resize.in_flight(None) and not resize.in_flight(_doc(3))
    assert resize.in_flight(_doc(3, previous=4))
    assert not resize.copy_done([], _doc(3))


def test_progress_parses_the_gateway_answer() -> None:
    assert Progress.parse({"generation": "abc", "migrating": False, "copied": 4, "scanned": 5}) == Progress(
        "abc", False, 4, 5)
