"""The body of every service's Alembic env.py: online migrations over the asyncio engine.

On PostgreSQL an advisory lock serializes replicas that start together, so only one of them
applies a revision and the others find the tables already there.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from alembic import context
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def run(target_metadata: MetaData) -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    version_table = config.attributes.get("version_table", "alembic_version")

    def migrate(connection: Connection) -> None:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": zlib.crc32(version_table.encode())})
        context.configure(connection=connection, target_metadata=target_metadata,
                          version_table=version_table, render_as_batch=not postgres)
        with context.begin_transaction():
            context.run_migrations()

    async def go() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(go())


def noop(*_args: Any) -> None:
    """Offline (SQL script) mode is not supported: migrations run against a live database."""
    raise SystemExit("offline migrations are not supported; run `bbapi migrate --database URL`")
