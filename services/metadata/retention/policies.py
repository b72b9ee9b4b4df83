"""Per-tenant retention overrides, stored in the metadata database (`bbapi retention set`)."""

from __future__ import annotations

import enum

from sqlalchemy import select

from services.common.auth import check_tenant
from services.common.db import Sessions, now_usec, reading
from services.common.durations import Duration
from services.common.retention import Override, Policies, RetentionSettings
from services.metadata.models import RetentionPolicy


class Keep(enum.Enum):
    """A window `set_override` leaves as it is."""

    UNCHANGED = "unchanged"


Change = Duration | None | Keep  # a new window, None for the service default, or no change


async def overrides(sessions: Sessions) -> dict[str, Override]:
    async with reading(sessions) as session:
        rows = await session.scalars(select(RetentionPolicy).order_by(RetentionPolicy.tenant))
        return {row.tenant: Override(_duration(row.invocation_seconds), _duration(row.audit_seconds))
                for row in rows}


async def policies(sessions: Sessions, settings: RetentionSettings) -> Policies:
    return Policies.defaults(settings, await overrides(sessions))


async def set_override(sessions: Sessions, tenant: str, invocations: Change = Keep.UNCHANGED,
                       audit: Change = Keep.UNCHANGED) -> Override:
    """Change a tenant's windows; a tenant back on both defaults has no row. Returns its override now."""
    check_tenant(tenant)
    async with sessions.begin() as session:
        row = await session.get(RetentionPolicy, tenant, with_for_update=True)
        stored = Override() if row is None else Override(_duration(row.invocation_seconds),
                                                         _duration(row.audit_seconds))
        wanted = Override(stored.invocations if isinstance(invocations, Keep) else invocations,
                          stored.audit if isinstance(audit, Keep) else audit)
        if wanted == Override():
            if row is not None:
                await session.delete(row)
        elif row is None:
            session.add(RetentionPolicy(tenant=tenant, invocation_seconds=wanted.invocations,
                                        audit_seconds=wanted.audit, updated_at_usec=now_usec()))
        else:
            row.invocation_seconds, row.audit_seconds, row.updated_at_usec = (wanted.invocations, wanted.audit,
                                                                               now_usec())
    return wanted


def _duration(seconds: int | None) -> Duration | None:
    return None if seconds is None else Duration(seconds)
