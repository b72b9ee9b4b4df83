"""Which build an invocation belongs to: its first stream's BES build_id, bound to the key that opened it.

Bazel keeps one build_id for every retry of a command's stream and never prints it, while the invocation
id is printed and shared. A retried stream that carries no key (Bazel 4 puts it only into the options text
of the first events, which a retry from a later event does not repeat) is let in as the principal that
opened the invocation if, and only if, it presents the same build_id; the key must still be valid. The
binding lives in the database, so it holds on any gateway replica and after restarts.
"""

from __future__ import annotations

from sqlalchemy import select

from services.common.auth import Capability, Principal
from services.common.db import Sessions, reading
from services.metadata.models import ApiKey, Invocation


async def principal_of_build(sessions: Sessions, invocation_id: str, build_id_hash: str) -> Principal | None:
    """The principal whose key opened `invocation_id` with this build_id, or None (unknown, other build,
    unbound, or the key was revoked since)."""
    if not build_id_hash:
        return None
    async with reading(sessions) as session:
        row = (await session.execute(
            select(Invocation.tenant, ApiKey.id, ApiKey.capability)
            .join(ApiKey, (ApiKey.id == Invocation.key_id) & (ApiKey.tenant == Invocation.tenant))
            .where(Invocation.invocation_id == invocation_id, Invocation.build_id_hash == build_id_hash,
                   ApiKey.revoked_at.is_(None))
            .limit(1))).first()
    return None if row is None else Principal(row.tenant, Capability(row.capability), row.id)
