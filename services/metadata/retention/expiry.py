"""The metadata janitor's sweep: expired invocations, their rows, cache statistics and audit entries, in
bounded batches.

An expired invocation goes in two steps. First its `invocations` row moves to
`retention_expired_invocations` (a batch of rows per transaction): from then on no query sees it, a
stream still holding it loses its claim, and a build reusing its id starts a new invocation. Then its
rows in the child tables are deleted at most `janitor_batch` per transaction; its entry goes with the
last of them. A sweep cut short (a crash, a stop) resumes from the entries left, so nothing is orphaned.
Cache statistics (keyed by the invocation id Bazel sent, with or without build events) follow the
invocation policy by their own last call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, false, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import invocation_ids
from services.common.db import Sessions, reading
from services.common.distinct import distinct_values
from services.common.janitor import JanitorSettings, Sweep
from services.common.retention import Policies, RetentionSettings, cutoff
from services.metadata.invocations.sql import chunks
from services.metadata.models import AuditEntry, ExpiredInvocation, Invocation, InvocationCacheStats
from services.metadata.retention import policies, sql

INVOCATIONS, AUDIT = Invocation.__tablename__, AuditEntry.__tablename__
STATS = InvocationCacheStats


@dataclass
class MetadataExpiry:
    sessions: Sessions
    retention: RetentionSettings
    janitor: JanitorSettings

    async def sweep(self, now_usec: int, dry_run: bool = False) -> Sweep:
        """Delete (or, dry, count) what every tenant's policy has expired at `now_usec`."""
        rules = await self.policies()
        async with reading(self.sessions) as session:
            with_invocations = await distinct_values(session, Invocation.tenant)
            with_audit = await distinct_values(session, AuditEntry.tenant)
            with_stats = await distinct_values(session, STATS.c.tenant)
            being_deleted = set(await session.scalars(select(ExpiredInvocation.tenant).distinct()))
        done = Sweep(dry_run)
        if dry_run:
            await self._count(done, rules, now_usec, sorted({*with_invocations, *being_deleted}), with_audit)
            await self._count_stats(done, rules, now_usec, with_stats)
            return done
        for tenant in with_invocations:
            if (before := cutoff(now_usec, rules.invocations_of(tenant))) is not None:
                await self._expire_invocations(done, tenant, before)
        await self._delete_expired_rows(done)
        for tenant in with_stats:
            if (before := cutoff(now_usec, rules.invocations_of(tenant))) is not None:
                await self._expire_stats(done, tenant, before)
        for tenant in with_audit:
            if (before := cutoff(now_usec, rules.audit_of(tenant))) is not None:
                await self._expire_audit(done, tenant, before)
        return done

    async def policies(self) -> Policies:
        return await policies.policies(self.sessions, self.retention)

    async def retained(self, tenant: str, asked: Collection[str], now_usec: int) -> set[str]:
        """Which of the asked invocation ids (any UUID spelling) the tenant has and keeps at `now_usec`."""
        canonical = {given: invocation_ids.normalised(given) for given in asked}
        before = cutoff(now_usec, (await self.policies()).invocations_of(tenant))
        kept: set[str] = set()
        async with reading(self.sessions) as session:
            for some in chunks(sorted(set(canonical.values()))):
                query = select(Invocation.invocation_id).where(Invocation.tenant == tenant,
                                                               Invocation.invocation_id.in_(some))
                if before is not None:
                    query = query.where(Invocation.updated_at_usec >= before)
                kept.update(await session.scalars(query))
        return {given for given, name in canonical.items() if name in kept}

    async def _batch(self, done: Sweep, rows: int) -> None:
        done.batch(rows)
        await asyncio.sleep(self.janitor.janitor_pause_seconds)

    async def _expire_invocations(self, done: Sweep, tenant: str, before: int) -> None:
        while True:
            async with self.sessions.begin() as session:
                ids = list(await session.scalars(
                    _expired(tenant, before).order_by(Invocation.updated_at_usec).limit(self.janitor.janitor_batch)
                    .with_for_update(skip_locked=True)))  # PostgreSQL: a row being written is left for later
                if not ids:
                    return
                await session.execute(insert(ExpiredInvocation), [{"id": i, "tenant": tenant} for i in ids])
                await session.execute(delete(Invocation).where(Invocation.id.in_(ids)))
            done.add(tenant, INVOCATIONS, len(ids))
            await self._batch(done, len(ids))

    async def _delete_expired_rows(self, done: Sweep) -> None:
        while True:
            async with self.sessions.begin() as session:
                expired = list(await session.scalars(
                    select(ExpiredInvocation).order_by(ExpiredInvocation.id).limit(self.janitor.janitor_batch)
                    .with_for_update(skip_locked=True)))
                if not expired:
                    return
                budget = self.janitor.janitor_batch
                for item in expired:
                    budget = await self._delete_rows_of(session, done, item, budget)
                    if budget == 0:
                        break
            await self._batch(done, self.janitor.janitor_batch - budget)

    async def _delete_rows_of(self, session: AsyncSession, done: Sweep, item: ExpiredInvocation, budget: int) -> int:
        """Delete up to `budget` rows of one expired invocation, and its entry once none are left."""
        for table in sql.CHILD_TABLES:
            if budget == 0:
                return 0
            deleted = await sql.delete_rows_of(session, table, item.id, budget)
            done.add(item.tenant, table.name, deleted)
            if deleted == budget:  # the table may hold more: the next transaction looks again
                return 0
            budget -= deleted
        await session.delete(item)
        return budget

    async def _expire_audit(self, done: Sweep, tenant: str, before: int) -> None:
        old = AuditEntry.tenant == tenant, AuditEntry.created_at_usec < before
        while True:
            async with self.sessions.begin() as session:
                ids = list(await session.scalars(
                    select(AuditEntry.id).where(*old).order_by(AuditEntry.created_at_usec, AuditEntry.id)
                    .limit(self.janitor.janitor_batch).with_for_update(skip_locked=True)))
                if not ids:
                    return
                await session.execute(delete(AuditEntry).where(AuditEntry.id.in_(ids)))
            done.add(tenant, AUDIT, len(ids))
            await self._batch(done, len(ids))

    async def _expire_stats(self, done: Sweep, tenant: str, before: int) -> None:
        while True:
            async with self.sessions.begin() as session:
                ids = list(await session.scalars(
                    select(STATS.c.invocation_id).where(*_stale_stats(tenant, before)).order_by(STATS.c.last_call_usec)
                    .limit(self.janitor.janitor_batch).with_for_update(skip_locked=True)))
                if not ids:
                    return
                await session.execute(delete(STATS).where(STATS.c.tenant == tenant, STATS.c.invocation_id.in_(ids)))
            done.add(tenant, STATS.name, len(ids))
            await self._batch(done, len(ids))

    async def _count_stats(self, done: Sweep, rules: Policies, now_usec: int, with_stats: list[str]) -> None:
        async with reading(self.sessions) as session:
            for tenant in with_stats:
                if (before := cutoff(now_usec, rules.invocations_of(tenant))) is not None:
                    done.add(tenant, STATS.name, await sql.count(session, select(STATS.c.invocation_id).where(
                        *_stale_stats(tenant, before))))

    async def _count(self, done: Sweep, rules: Policies, now_usec: int, with_invocations: list[str],
                     with_audit: list[str]) -> None:
        """What a sweep at `now_usec` would delete, counted in one read-only transaction."""
        async with reading(self.sessions) as session:
            for tenant in with_invocations:
                before = cutoff(now_usec, rules.invocations_of(tenant))
                expired = _expired(tenant, before) if before is not None else select(Invocation.id).where(false())
                done.add(tenant, INVOCATIONS, await sql.count(session, expired))
                ids = expired.union_all(select(ExpiredInvocation.id).where(ExpiredInvocation.tenant == tenant))
                for table in sql.CHILD_TABLES:
                    done.add(tenant, table.name, await sql.count(session, select(table.c.invocation).where(
                        table.c.invocation.in_(ids))))
            for tenant in with_audit:
                if (before := cutoff(now_usec, rules.audit_of(tenant))) is not None:
                    done.add(tenant, AUDIT, await sql.count(session, select(AuditEntry.id).where(
                        AuditEntry.tenant == tenant, AuditEntry.created_at_usec < before)))


def _expired(tenant: str, before: int) -> Select[Any]:
    return select(Invocation.id).where(Invocation.tenant == tenant, Invocation.updated_at_usec < before)


def _stale_stats(tenant: str, before: int) -> tuple[ColumnElement[bool], ...]:
    return STATS.c.tenant == tenant, STATS.c.last_call_usec < before
