"""API keys in the metadata database, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from services.common.auth import Capability, hash_key
from services.common.db import Sessions
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.metadata import keys
from services.metadata.db import migrate


async def test_create_resolve_list_revoke(maker: Sessions, database_url: str) -> None:
    await migrate(database_url)  # migrations are idempotent
    assert not await keys.any_keys(maker)
    info, key = await keys.create_key(maker, "acme", Capability.READ, label="ci")
    assert await keys.any_keys(maker)
    principal = await keys.resolve(maker, hash_key(key))
    assert principal is not None and (principal.tenant, principal.capability) == ("acme", Capability.READ)
    assert await keys.resolve(maker, hash_key("x" * 20)) is None
    assert not await keys.is_revoked(maker, hash_key("x" * 20)) and not await keys.is_revoked(maker, hash_key(key))
    other, _ = await keys.create_key(maker, "globex", Capability.ADMIN)
    assert [k.id for k in await keys.list_keys(maker, "acme")] == [info.id]
    assert {k.id for k in await keys.list_keys(maker)} == {info.id, other.id}
    revoked = await keys.revoke_key(maker, info.id)
    assert revoked.revoked_at is not None
    assert await keys.resolve(maker, hash_key(key)) is None
    assert await keys.is_revoked(maker, hash_key(key))
    with pytest.raises(NotFound):
        await keys.revoke_key(maker, "AKmissing")
    with pytest.raises(InvalidArgument):
        await keys.create_key(maker, "Not A Tenant", Capability.READ)


async def test_bootstrap_key_is_created_once(maker: Sessions) -> None:
    assert await keys.ensure_key(maker, "B" * 20, "default", Capability.ADMIN) is True
    assert await keys.ensure_key(maker, "B" * 20, "default", Capability.ADMIN) is False
    with pytest.raises(AlreadyExists):
        await keys.create_key(maker, "default", Capability.READ, key="B" * 20)
