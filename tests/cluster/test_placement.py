"""Rendezvous placement over 65,536 slots: deterministic, balanced, minimal movement, spread over zones."""

from __future__ import annotations

import functools
from collections import Counter

import pytest

from services.blobstore.cluster.membership import Member
from services.blobstore.cluster.placement import SLOTS, Placement, slot_of
from services.common.errors import InvalidArgument


def members(n: int, weights: dict[int, float] | None = None) -> list[Member]:
    return [Member(id=f"cas-{i}", address=f"127.0.0.1:{7100 + i}", weight=(weights or {}).get(i, 1.0))
            for i in range(n)]


@functools.cache
def table(n: int, replication: int = 2) -> Placement:
    return Placement.build(members(n), replication)


def in_zones(n: int, zones: int) -> list[Member]:
    """Members cas-0..cas-{n-1}, member i in zone z{i mod zones}."""
    return [m.model_copy(update={"zone": f"z{i % zones}"}) for i, m in enumerate(members(n))]


@functools.cache
def zoned(n: int, zones: int, replication: int = 2) -> Placement:
    return Placement.build(in_zones(n, zones), replication)


def zone_of(member_id: str, zones: int) -> str:
    return f"z{int(member_id.removeprefix('cas-')) % zones}"


def shares(placement: Placement, replicas: bool) -> Counter[str]:
    counted: Counter[str] = Counter()
    for slot in range(SLOTS):
        owners = placement.owners(slot) if replicas else placement.owners(slot)[:1]
        counted.update(owners)
    return counted


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_primaries_and_replicas_are_balanced_within_2_percent(n: int) -> None:
    placement = table(n)
    for replicas, per_member in ((False, SLOTS / n), (True, SLOTS * 2 / n)):
        counts = shares(placement, replicas)
        assert set(counts) == {f"cas-{i}" for i in range(n)}
        assert all(abs(c - per_member) / per_member <= 0.02 for c in counts.values()), counts


def test_every_slot_has_distinct_replicas_and_a_full_preference_list() -> None:
    placement = table(4)
    for slot in range(0, SLOTS, 97):
        preference = placement.preference(slot)
        assert sorted(preference) == [f"cas-{i}" for i in range(4)]
        assert placement.owners(slot) == preference[:2]


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_adding_a_member_moves_about_one_in_n_plus_1_slots_and_only_to_it(n: int) -> None:
    before, after = table(n), table(n + 1)
    moved = [s for s in range(SLOTS) if before.owners(s)[0] != after.owners(s)[0]]
    assert abs(len(moved) / SLOTS - 1 / (n + 1)) < 0.01
    assert {after.owners(s)[0] for s in moved} == {f"cas-{n}"}
    # replica sets change only where the newcomer joined them: about R/(n+1) of the slots
    changed = [s for s in range(SLOTS) if set(before.owners(s)) != set(after.owners(s))]
    assert abs(len(changed) / SLOTS - 2 / (n + 1)) < 0.015
    assert all(f"cas-{n}" in after.owners(s) for s in changed)


def test_removing_a_member_moves_only_its_slots() -> None:
    before, after = table(4), table(3)
    for slot in range(SLOTS):
        if before.owners(slot)[0] != "cas-3":
            assert after.owners(slot)[0] == before.owners(slot)[0]


def test_placement_is_deterministic_and_independent_of_member_order_and_addresses() -> None:
    one = table(3)
    shuffled = [m.model_copy(update={"address": "elsewhere:1"}) for m in reversed(members(3))]
    other = Placement.build(shuffled, replication=2)
    assert all(one.preference(s) == other.preference(s) for s in range(SLOTS))


def test_weights_scale_a_members_share() -> None:
    placement = Placement.build(members(3, weights={0: 2.0}), replication=1)
    counts = shares(placement, replicas=False)
    assert abs(counts["cas-0"] / SLOTS - 0.5) < 0.02  # weight 2 of a total 4


def test_replication_is_capped_by_the_member_count_and_slots_come_from_the_digest() -> None:
    single = Placement.build(members(1), replication=2)
    assert single.replicas == 1 and single.owners(123) == ("cas-0",)
    assert slot_of("ffff" + "0" * 60) == SLOTS - 1 and slot_of("0001" + "a" * 60) == 1
    with pytest.raises(InvalidArgument):
        Placement.build([], replication=2)


@pytest.mark.parametrize(("n", "zones", "replication"), [(4, 2, 2), (5, 2, 2), (6, 3, 2), (6, 3, 3), (7, 4, 3)])
def test_replicas_are_in_distinct_zones_when_there_are_enough_zones(n: int, zones: int, replication: int) -> None:
    placement = zoned(n, zones, replication)
    plain = Placement.build(members(n), replication)
    crowded = 0
    for slot in range(SLOTS):
        owners = placement.owners(slot)
        assert len({zone_of(o, zones) for o in owners}) == replication, (slot, owners)
        assert sorted(placement.preference(slot)) == sorted(plain.preference(slot))  # everyone, once
        assert placement.owners(slot)[0] == plain.owners(slot)[0]  # the rendezvous winner stays primary
        crowded += len({zone_of(o, zones) for o in plain.owners(slot)}) < replication
    assert crowded > SLOTS / 10  # without zones many slots would keep two copies in one zone


@pytest.mark.parametrize(("n", "zones", "replication"), [(4, 2, 2), (6, 3, 2), (6, 3, 3)])
def test_zones_of_equal_size_keep_replicas_balanced_within_2_percent(n: int, zones: int, replication: int) -> None:
    counts = shares(zoned(n, zones, replication), replicas=True)
    per_member = SLOTS * replication / n
    assert all(abs(c - per_member) / per_member <= 0.02 for c in counts.values()), counts


def test_with_as_many_zones_as_replicas_each_zone_holds_one_copy_of_everything() -> None:
    """Uneven zones (3 members and 2): each zone holds every key once, so the smaller zone's members hold more."""
    counts = shares(zoned(5, 2), replicas=True)
    by_zone = {z: sum(c for m, c in counts.items() if zone_of(m, 2) == z) for z in ("z0", "z1")}
    assert by_zone == {"z0": SLOTS, "z1": SLOTS}
    assert all(abs(counts[m] - SLOTS / 2) / (SLOTS / 2) <= 0.02 for m in ("cas-1", "cas-3"))


@pytest.mark.parametrize(("n", "zones"), [(3, 3), (4, 2), (6, 3)])
def test_adding_a_member_with_zones_moves_about_r_in_n_plus_1_slots_and_only_to_it(n: int, zones: int) -> None:
    before, after = zoned(n, zones), zoned(n + 1, zones)
    changed = [s for s in range(SLOTS) if set(before.owners(s)) != set(after.owners(s))]
    assert len(changed) / SLOTS <= 2 / (n + 1) + 0.015
    assert all(f"cas-{n}" in after.owners(s) for s in changed)
    moved = [s for s in range(SLOTS) if before.owners(s)[0] != after.owners(s)[0]]
    assert abs(len(moved) / SLOTS - 1 / (n + 1)) < 0.01


def test_zoned_placement_is_deterministic() -> None:
    again = Placement.build(list(reversed(in_zones(6, 3))), replication=2)
    assert all(zoned(6, 3).preference(s) == again.preference(s) for s in range(SLOTS))


def test_too_few_zones_or_a_member_without_one_falls_back_to_plain_order() -> None:
    plain = Placement.build(members(4), replication=3)
    two_zones = Placement.build(in_zones(4, 2), replication=3)  # fewer zones than replicas
    partly = Placement.build([*in_zones(3, 3), members(4)[3]], replication=3)  # cas-3 has no zone
    for slot in range(SLOTS):
        assert two_zones.preference(slot) == partly.preference(slot) == plain.preference(slot)
