"""Zones in the membership document: optional on the wire, and a change of zone is migrated like a resize."""

from __future__ import annotations

import json
from pathlib import Path

from services.blobstore.cluster import membership, resize
from services.blobstore.cluster.membership import Member, Progress, generation_of
from services.blobstore.cluster.resize import Phase
from services.cluster.settings import ClusterSettings
from services.cluster.supervisor import Cluster


def shards(zones: list[str | None]) -> tuple[Member, ...]:
    return tuple(Member(id=f"cas-{i}", address=f"127.0.0.1:{7100 + i}", zone=z) for i, z in enumerate(zones))


def test_a_zone_is_written_only_when_known_and_read_back() -> None:
    plain = resize.document(2, shards([None, None]), None)
    assert all("zone" not in m for m in json.loads(plain)["members"])  # documents without zones are unchanged
    zoned = resize.document(2, shards(["a", "b"]), shards([None, None]))
    parsed = membership.parse(zoned)
    assert [m.zone for m in parsed.members] == ["a", "b"]
    assert parsed.previous is not None and [m.zone for m in parsed.previous.members] == [None, None]
    assert membership.encode(parsed) == zoned


def test_new_zones_for_the_same_shards_are_copied_to_before_they_settle() -> None:
    before, after = shards([None, None, None]), shards(["a", "b", "a"])
    current = resize.document(2, before, None)
    moving = resize.plan(after, 2, current, ready_shards=3)
    assert (moving.text, moving.phase) == (resize.document(2, after, before), Phase.MIGRATING)
    still = resize.plan(after, 2, moving.text, ready_shards=3)
    assert (still.text, still.phase) == (moving.text, Phase.MIGRATING)
    done = resize.plan(after, 2, moving.text, ready_shards=3,
                       reports=[Progress(generation_of(moving.text), migrating=False)])
    assert (done.text, done.settled) == (resize.document(2, after, None), True)
    assert resize.plan(after, 2, done.text, ready_shards=3).text == done.text  # stable from then on


def test_cluster_zones_are_assigned_to_shards_round_robin(tmp_path: Path) -> None:
    cluster = Cluster(ClusterSettings(data_dir=tmp_path, zones=" a, b ,"))
    assert [m.zone for m in cluster.members(["cas-0", "cas-1", "cas-2", "cas-3"])] == ["a", "b", "a", "b"]
    assert [m.zone for m in Cluster(ClusterSettings(data_dir=tmp_path)).members(["cas-0"])] == [None]
