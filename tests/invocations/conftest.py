"""Fixtures for the invocation tests: a migrated database (SQLite and PostgreSQL) and its sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common import db
from services.metadata.db import migrate, sessions


@pytest.fixture
async def maker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await migrate(database_url)
    engine = db.create_engine(database_url)
    yield sessions(engine)
    await engine.dispose()
