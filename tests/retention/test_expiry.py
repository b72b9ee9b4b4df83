"""The metadata janitor: expiry by tenant policy and default, forever, audit, bounded batches, dry run."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from services.common.db import Sessions
from services.common.durations import Duration
from services.common.retention import Override
from services.gen.bbapi.internal.v1 import metadata_pb2
from services.metadata import audit
from services.metadata.models import AuditEntry, Invocation
from services.metadata.retention import policies
from services.metadata.retention.policies import Keep
from tests.invocations.support import numbered, started
from tests.retention.support import (
    USEC_PER_DAY,
    expiry,
    invocations,
    now_plus,
    orphans,
    rows_of,
    rows_per_table,
    stored_build,
)


async def test_invocations_expire_by_their_tenants_policy_or_the_default(maker: Sessions) -> None:
    await policies.set_override(maker, "acme", invocations=Duration.parse("7d"))
    await policies.set_override(maker, "initech", invocations=Duration.parse("0"))
    builds = {tenant: {age: await stored_build(maker, tenant, age) for age in (40, 10, 0)}
              for tenant in ("acme", "globex", "initech")}
    kept_rows = await rows_per_table(maker, "initech")

    done = await expiry(maker).sweep(now_plus())

    assert await invocations(maker, "acme") == {builds["acme"][0]}  # 7 days: the 10-day-old one went too
    assert await invocations(maker, "globex") == {builds["globex"][10], builds["globex"][0]}  # default 30 days
    assert await invocations(maker, "initech") == set(builds["initech"].values())  # 0 = forever
    assert await rows_per_table(maker, "initech") == kept_rows
    assert done.rows["acme"]["invocations"] == 2 and done.rows["globex"]["invocations"] == 1
    assert "initech" not in done.rows
    assert done.rows["acme"]["invocation_events"] == 2 * done.rows["globex"]["invocation_events"] > 0
    assert await orphans(maker) == 0, "every row of a deleted invocation went with it"


async def test_time_counts_from_the_last_activity_not_the_start(maker: Sessions) -> None:
    old_but_active = await stored_build(maker, "acme")
    async with maker.begin() as session:  # started 90 days ago, still sending events
        await session.execute(update(Invocation).where(Invocation.invocation_id == old_but_active)
                              .values(created_at_usec=Invocation.created_at_usec - 90 * USEC_PER_DAY))
    await expiry(maker).sweep(now_plus())
    assert await invocations(maker, "acme") == {old_but_active}
    await expiry(maker).sweep(now_plus(31))
    assert await invocations(maker, "acme") == set()


async def test_overrides_fall_back_to_the_default_one_window_at_a_time(maker: Sessions) -> None:
    assert await policies.set_override(maker, "acme", invocations=Duration.parse("14d"),
                                       audit=Duration.parse("0")) == Override(Duration(14 * 86400), Duration(0))
    assert (await policies.set_override(maker, "acme", invocations=None)).audit == 0
    rules = await expiry(maker).policies()
    assert (rules.invocations_of("acme"), rules.audit_of("acme")) == (30 * 86400, 0)
    await policies.set_override(maker, "acme", audit=None, invocations=Keep.UNCHANGED)
    assert await policies.overrides(maker) == {}, "a tenant back on both defaults has no row"


async def test_audit_entries_expire_by_policy(maker: Sessions) -> None:
    await policies.set_override(maker, "acme", audit=Duration.parse("30d"))
    for tenant in ("acme", "globex"):
        for detail in ("old", "older", "new"):
            await audit.record(maker, metadata_pb2.AuditRecord(tenant=tenant, key_id="AK1", action="DeleteFile",
                                                               resource="cas:x", detail=detail))
    async with maker.begin() as session:
        await session.execute(update(AuditEntry).where(AuditEntry.detail == "old").values(
            created_at_usec=AuditEntry.created_at_usec - 40 * USEC_PER_DAY))
        await session.execute(update(AuditEntry).where(AuditEntry.detail == "older").values(
            created_at_usec=AuditEntry.created_at_usec - 400 * USEC_PER_DAY))

    done = await expiry(maker).sweep(now_plus())

    async with maker() as session:
        left = {(e.tenant, e.detail) for e in await session.scalars(select(AuditEntry))}
    assert left == {("acme", "new"), ("globex", "new"), ("globex", "old")}  # default: 1 year
    assert done.rows["acme"]["audit_entries"] == 2 and done.rows["globex"]["audit_entries"] == 1


async def test_many_expired_invocations_go_in_bounded_batches(maker: Sessions) -> None:
    ids = []
    for _ in range(12):
        invocation_id = str(uuid.uuid4())
        ids.append(await stored_build(maker, "acme", 45, numbered([started(invocation_id)])))
    big = await stored_build(maker, "acme", 45)  # a recorded build: many rows in several tables
    fresh = await stored_build(maker, "acme")
    expected = await rows_per_table(maker, "acme") - await rows_of(maker, fresh)

    done = await expiry(maker, batch=5).sweep(now_plus())

    assert await invocations(maker, "acme") == {fresh} and big not in await invocations(maker, "acme")
    assert done.largest_batch <= 5, "no transaction deleted more rows than the batch"
    assert done.batches >= sum(expected.values()) // 5
    assert done.rows["acme"] == expected
    assert await orphans(maker) == 0


async def test_a_dry_run_deletes_nothing_and_counts_what_a_sweep_deletes(maker: Sessions) -> None:
    await policies.set_override(maker, "acme", invocations=Duration.parse("1d"))
    for tenant, days in (("acme", 2), ("acme", 0), ("globex", 2), ("globex", 31)):
        await stored_build(maker, tenant, days)
    await audit.record(maker, metadata_pb2.AuditRecord(tenant="acme", key_id="AK1", action="DeleteFile"))
    before = {tenant: await rows_per_table(maker, tenant) for tenant in ("acme", "globex")}

    dry = await expiry(maker).sweep(now_plus(), dry_run=True)
    assert {tenant: await rows_per_table(maker, tenant) for tenant in ("acme", "globex")} == before
    assert dry.batches == 0 and dry.dry_run and "would delete" in dry.summary()

    real = await expiry(maker, batch=7).sweep(now_plus())
    assert dry.rows == real.rows
    assert dry.rows["acme"]["invocations"] == dry.rows["globex"]["invocations"] == 1
    assert (await expiry(maker).sweep(now_plus(), dry_run=True)).rows == {}



async def test_retained_answers_for_the_asking_tenant_only(maker: Sessions) -> None:
    """What the logs janitor asks: another tenant's invocation reads as gone, an expired one too."""
    kept, old = await stored_build(maker, "acme"), await stored_build(maker, "acme", 40)
    metadata = expiry(maker)
    asked = [kept.upper(), old, str(uuid.uuid4()), "not-a-uuid"]
    assert await metadata.retained("acme", asked, now_plus()) == {kept.upper()}
    assert await metadata.retained("globex", asked, now_plus()) == set()
    await policies.set_override(maker, "acme", invocations=Duration.parse("0"))
    assert await metadata.retained("acme", asked, now_plus()) == {kept.upper(), old}
