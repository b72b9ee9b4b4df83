"""The SQLite engine the services share: a dropped connection never leaves the database locked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from services.common import db


async def test_a_connection_dropped_in_the_middle_of_a_read_releases_the_write_lock(tmp_path: Path) -> None:
    """What a client hanging up mid-transaction leaves behind: a connection in a write transaction whose
    half-read cursor is still referenced, dropped by the pool. Other writers must get the lock at once
    (before, it stayed held until the cursor was garbage-collected, and every writer timed out)."""
    path = tmp_path / "bbapi.db"
    engine = db.create_engine(db.sqlite_url(path))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE events (sequence INTEGER)"))
            await connection.execute(text("INSERT INTO events VALUES (1), (2), (3)"))
        connection = await engine.connect()
        await connection.begin()
        reading = await connection.stream(text("SELECT sequence FROM events"))
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
        assert reading is not None  # the half-read cursor is alive up to here
    finally:
        await engine.dispose()
