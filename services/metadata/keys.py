"""API keys: create, list, revoke, and resolve a presented key to its tenant and capability."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from services.common.auth import Capability, Principal, check_key_format, check_tenant, hash_key, new_key, redact
from services.common.db import Sessions, reading
from services.common.errors import AlreadyExists, NotFound
from services.metadata.models import ApiKey


@dataclass(frozen=True)
class KeyInfo:
    id: str
    tenant: str
    capability: Capability
    label: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(row.id, row.tenant, Capability(row.capability), row.label, row.hint, row.created_at,
                   row.revoked_at)


async def create_key(sessions: Sessions, tenant: str, capability: Capability, label: str = "",
                     key: str | None = None) -> tuple[KeyInfo, str]:
    """A new key (or the given one, for bootstrapping); the plain key is returned only here."""
    check_tenant(tenant)
    key = check_key_format(key) if key is not None else new_key()
    row = ApiKey(id="AK" + secrets.token_hex(8), key_hash=hash_key(key), tenant=tenant, capability=capability.value,
                 label=label, hint=redact(key), created_at=datetime.now(UTC), revoked_at=None)
    async with sessions.begin() as session:
        if await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == row.key_hash)):
            raise AlreadyExists("this API key already exists")
        session.add(row)
    return KeyInfo.of(row), key


async def ensure_key(sessions: Sessions, key: str, tenant: str, capability: Capability) -> bool:
    """Create `key` unless it exists; True if it was created. Used for deployment bootstrap keys."""
    try:
        await create_key(sessions, tenant, capability, label="bootstrap", key=key)
    except AlreadyExists:
        return False
    return True


async def list_keys(sessions: Sessions, tenant: str | None = None) -> list[KeyInfo]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    async with reading(sessions) as session:
        return [KeyInfo.of(row) for row in await session.scalars(query)]


async def revoke_key(sessions: Sessions, key_id: str) -> KeyInfo:
    async with sessions.begin() as session:
        row = await session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
        return KeyInfo.of(row)


async def any_keys(sessions: Sessions) -> bool:
    async with reading(sessions) as session:
        return await session.scalar(select(ApiKey.id).limit(1)) is not None


async def resolve(sessions: Sessions, key_hash: str) -> Principal | None:
    """The principal of a live key, or None for unknown and revoked keys alike."""
    async with reading(sessions) as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
    if row is None or row.revoked_at is not None:
        return None
    return Principal(row.tenant, Capability(row.capability), row.id)


async def is_revoked(sessions: Sessions, key_hash: str) -> bool:
    """Whether the key existed and was revoked: said to the holder of the key only, who may learn
    why it stopped working; an unknown key stays merely invalid."""
    async with reading(sessions) as session:
        revoked_at = await session.scalar(select(ApiKey.revoked_at).where(ApiKey.key_hash == key_hash))
    return revoked_at is not None
