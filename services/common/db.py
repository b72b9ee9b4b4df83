"""Database engines and migrations for the services that own tables (metadata, logs).

Users give plain URLs (`sqlite:///path`, `postgresql://user@host/db`); we pick the asyncio
drivers (aiosqlite, asyncpg). Each service migrates its own tables with its own Alembic history
and version table, so metadata and logs can share one PostgreSQL database without touching each
other's tables. SQLite runs in WAL mode, so readers never block the writer, and write
transactions take the lock up front so concurrent writers queue instead of failing; queries open
their sessions with `reading`, which takes no lock, so they never wait for a commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from services.common.errors import InvalidArgument

Sessions = async_sessionmaker[AsyncSession]

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


def async_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception as err:
        raise InvalidArgument(f"invalid database URL {url!r}: {err}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise InvalidArgument(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql://...")
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    return parsed


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged commit survives power loss too
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class _RollbackOnClose(sqlite3.Connection):
    """Ends the transaction before closing. While a statement that was reading is still referenced (the
    cursor of a call cancelled mid-query, kept by its traceback), closing only marks the connection for
    closing: it keeps its transaction, and so the write lock, until the garbage collector frees that
    cursor, and every other writer stalls. A client that hangs up mid-transaction caused exactly that."""

    def close(self) -> None:
        if self.in_transaction:
            self.rollback()
        super().close()


_READ_ONLY = {"postgresql_readonly": True}  # on SQLite, the mark of a `reading` transaction


def _begin(connection: Any) -> None:
    """Writers take the write lock when their transaction starts: a deferred transaction that reads
    and then writes cannot wait for the lock (SQLite refuses the upgrade at once to avoid deadlock),
    so concurrent writers would fail with "database is locked" instead of queueing on busy_timeout.
    A `reading` transaction never writes, so it starts deferred and reads its WAL snapshot at once."""
    read_only = connection.get_execution_options().get("postgresql_readonly", False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, pool_size=pool_size, max_overflow=pool_size,
                                     connect_args={"factory": _RollbackOnClose})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _begin)
        return engine
    return create_async_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def sessions(engine: AsyncEngine) -> Sessions:
    """Sessions whose rows stay readable after commit (the services hand them on after the transaction)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def reading(maker: Sessions) -> AsyncIterator[AsyncSession]:
    """A session for queries: a READ ONLY transaction on PostgreSQL; on SQLite one that takes no lock, so
    an API call reads beside an ingest commit instead of queueing behind it. It must not write."""
    async with maker() as session:
        await session.connection(execution_options=_READ_ONLY)
        yield session


def now_usec() -> int:
    """Now, as the *_usec columns store it: microseconds since the epoch."""
    return time.time_ns() // 1000


def _alembic_config(url: str, script_location: Path, version_table: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", async_url(url).render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["version_table"] = version_table
    return config


def migrate(url: str, script_location: Path, version_table: str) -> None:
    """Bring the service's tables to the newest revision (idempotent)."""
    command.upgrade(_alembic_config(url, script_location, version_table), "head")


async def migrate_async(url: str, script_location: Path, version_table: str) -> None:
    await asyncio.to_thread(migrate, url, script_location, version_table)
