"""The engines the services share: queries never wait for writers, and nothing leaves SQLite locked."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import db


async def _events_table(url: str) -> AsyncEngine:
    engine = db.create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE events (sequence INTEGER)"))
        await connection.execute(text("INSERT INTO events VALUES (1), (2), (3)"))
    return engine


async def test_a_connection_dropped_in_the_middle_of_a_read_releases_the_write_lock(tmp_path: Path) -> None:
    """What a client hanging up mid-transaction leaves behind: a connection in a write transaction whose
    half-read cursor is still referenced, dropped by the pool. Other writers must get the lock at once
    (before, it stayed held until the cursor was garbage-collected, and every writer timed out)."""
    path = tmp_path / "bbapi.db"
    engine = await _events_table(db.sqlite_url(path))
    try:
        connection = await engine.connect()
        await connection.begin()
        reading = await connection.stream(text("SELECT sequence FROM events"))  # referenced to the end
        assert await reading.fetchone() == (1,)
        await connection.invalidate()  # what the pool does with a connection whose call was cancelled
        await connection.close()

        other = sqlite3.connect(path, isolation_level=None, timeout=1)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO events VALUES (4)")
            other.execute("COMMIT")
        finally:
            other.close()
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM events"))).scalar() == 4
    finally:
        await engine.dispose()


async def test_queries_read_committed_rows_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    """An API call must not queue behind an ingest commit (on SQLite it waited for every one of them)."""
    path = tmp_path / "bbapi.db"
    engine = await _events_table(db.sqlite_url(path))
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO events VALUES (4)")

        async def query() -> list[int]:
            async with db.reading(db.sessions(engine)) as session:
                return list((await session.scalars(text("SELECT sequence FROM events ORDER BY sequence"))).all())

        # a writer would wait the 30 s busy timeout here
        assert await asyncio.wait_for(query(), timeout=10) == [1, 2, 3]
        writer.execute("COMMIT")
        assert await query() == [1, 2, 3, 4]
    finally:
        writer.close()
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite has no READ ONLY mode
async def test_queries_cannot_write_on_postgresql(database_url: str) -> None:
    engine = await _events_table(database_url)
    try:
        with pytest.raises(DBAPIError, match="read-only transaction"):
            async with db.reading(db.sessions(engine)) as session:
                await session.execute(text("INSERT INTO events VALUES (4)"))
        async with db.reading(db.sessions(engine)) as session:  # and the pooled connection is writable again
            assert (await session.scalar(text("SELECT count(*) FROM events"))) == 3
        async with db.sessions(engine).begin() as session:
            await session.execute(text("INSERT INTO events VALUES (4)"))
    finally:
        await engine.dispose()
