"""The metadata service's database: engine, sessions and migrations."""

from __future__ import annotations

from pathlib import Path

from services.common import db

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_metadata"


async def migrate(url: str) -> None:
    await db.migrate_async(url, MIGRATIONS, VERSION_TABLE)
