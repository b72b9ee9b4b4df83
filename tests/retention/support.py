"""Aged data for the retention tests: real ingests, then their clocks set back."""

from __future__ import annotations

import collections
import uuid

from sqlalchemy import func, select, update

from services.common import invocation_ids
from services.common.db import Sessions, now_usec
from services.common.janitor import JanitorSettings
from services.common.retention import DAY, RetentionSettings
from services.logs.models import LogStream
from services.logs.store import LogStore
from services.metadata.invocations.ingest import InvocationStore
from services.metadata.models import ExpiredInvocation, Invocation
from services.metadata.retention.expiry import MetadataExpiry
from services.metadata.retention.sql import CHILD_TABLES
from tests.invocations.support import Events, ingest, recorded

USEC_PER_DAY = DAY * 1_000_000


def settings(batch: int = 500) -> tuple[RetentionSettings, JanitorSettings]:
    return RetentionSettings(), JanitorSettings(janitor_batch=batch, janitor_pause_seconds=0)


def expiry(maker: Sessions, batch: int = 500) -> MetadataExpiry:
    return MetadataExpiry(maker, *settings(batch))


async def stored_build(maker: Sessions, tenant: str, days_idle: float = 0, events: Events | None = None,
                       log: bytes = b"") -> str:
    """A finished build ingested for real, idle for `days_idle` days; with a log when `log` is given."""
    invocation_id = str(uuid.uuid4())
    await ingest(InvocationStore(maker), tenant, events or recorded("build_plain"), invocation_id)
    if log:
        writer = await LogStore(maker).open(tenant, invocation_id)
        await writer.append([(1, log)])
        await writer.finish()
    await idle(maker, tenant, invocation_id, days_idle, log=bool(log))
    return invocation_id


async def idle(maker: Sessions, tenant: str, invocation_id: str, days: float, log: bool = True) -> None:
    """Set back the last activity of an invocation (and of its log, in the same database) by `days`."""
    await idle_invocation(maker, tenant, invocation_id, days)
    if log:
        await idle_log(maker, tenant, invocation_id, days)


async def idle_invocation(maker: Sessions, tenant: str, invocation_id: str, days: float,
                          started_only: bool = False) -> None:
    """Set back when an invocation started and (unless `started_only`) its last activity, by `days`."""
    back = int(days * USEC_PER_DAY)
    values = {"created_at_usec": Invocation.created_at_usec - back}
    if not started_only:
        values["updated_at_usec"] = Invocation.updated_at_usec - back
    async with maker.begin() as session:
        await session.execute(update(Invocation).where(
            Invocation.tenant == tenant, Invocation.invocation_id == invocation_ids.canonical(invocation_id))
            .values(values))


async def idle_log(maker: Sessions, tenant: str, invocation_id: str, days: float) -> None:
    back = int(days * USEC_PER_DAY)
    async with maker.begin() as session:
        await session.execute(update(LogStream).where(LogStream.tenant == tenant,
                                                      LogStream.invocation_id == invocation_id)
                              .values(updated_at_usec=LogStream.updated_at_usec - back))


async def invocations(maker: Sessions, tenant: str) -> set[str]:
    async with maker() as session:
        return set(await session.scalars(select(Invocation.invocation_id).where(Invocation.tenant == tenant)))


async def rows_per_table(maker: Sessions, tenant: str) -> collections.Counter[str]:
    """Rows of the tenant's invocations in every table that holds them (what the janitor deletes)."""
    counts: collections.Counter[str] = collections.Counter()
    async with maker() as session:
        ids = select(Invocation.id).where(Invocation.tenant == tenant)
        counts["invocations"] = await session.scalar(select(func.count()).select_from(ids.subquery())) or 0
        for table in CHILD_TABLES:
            counts[table.name] = await session.scalar(
                select(func.count()).select_from(table).where(table.c.invocation.in_(ids))) or 0
    return +counts


async def rows_of(maker: Sessions, invocation_id: str) -> collections.Counter[str]:
    """The rows of one invocation, per table."""
    async with maker() as session:
        key = await session.scalar(select(Invocation.id).where(Invocation.invocation_id == invocation_id))
        counts = collections.Counter({"invocations": 1})
        for table in CHILD_TABLES:
            counts[table.name] = await session.scalar(
                select(func.count()).select_from(table).where(table.c.invocation == key)) or 0
    return +counts


async def orphans(maker: Sessions) -> int:
    """Child rows whose invocation row is gone and that no pending deletion accounts for."""
    async with maker() as session:
        live = select(Invocation.id)
        total = 0
        for table in CHILD_TABLES:
            total += await session.scalar(select(func.count()).select_from(table).where(
                table.c.invocation.not_in(live))) or 0
        total += await session.scalar(select(func.count()).select_from(ExpiredInvocation)) or 0
    return total


def now_plus(days: float = 0) -> int:
    return now_usec() + int(days * USEC_PER_DAY)
