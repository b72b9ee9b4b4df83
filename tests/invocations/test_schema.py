"""The migrations create exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from services.common import db
from services.metadata.db import MIGRATIONS, VERSION_TABLE, migrate
from services.metadata.models import Base


async def test_migrations_match_the_models(database_url: str) -> None:
    await migrate(database_url)
    engine = db.create_engine(database_url)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [d for d in compare_metadata(context, Base.metadata) if "alembic_version" not in str(d)]

    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


def _insert_invocation(connection: Connection, /, **given: object) -> None:
    """A row of the invocations table as the database has it now: `given`, and zero values elsewhere."""
    table = Table("invocations", MetaData(), autoload_with=connection)
    zero = {bool: False, int: 0, str: ""}
    row = {c.name: given.get(c.name, zero.get(c.type.python_type, "")) for c in table.columns if c.name != "id"}
    connection.execute(insert(table).values(**{**row, "sources": "{}"}))


async def test_parent_run_id_arrives_empty_on_stored_invocations(database_url: str) -> None:
    """0005 adds a column with a default, so rows stored before it read '' and the downgrade keeps them."""
    config = db._alembic_config(database_url, MIGRATIONS, VERSION_TABLE)
    await asyncio.to_thread(command.upgrade, config, "0004")
    engine = db.create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_insert_invocation, tenant="acme", run_id="r1",
                                      invocation_id="6a0d2f64-8a55-4e0b-9c3c-3f4e2a9a1b10")
        await migrate(database_url)
        async with engine.connect() as connection:
            stored = (await connection.execute(text("SELECT run_id, parent_run_id FROM invocations"))).all()
            assert [tuple(r) for r in stored] == [("r1", "")]
        await asyncio.to_thread(command.downgrade, config, "0004")
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT run_id FROM invocations"))).scalars().all() == ["r1"]
    finally:
        await engine.dispose()


async def test_dropping_test_size_keeps_the_stored_targets(database_url: str) -> None:
    """0004 drops a column (SQLite rebuilds the table): the rows and their primary key survive, both ways."""
    config = db._alembic_config(database_url, MIGRATIONS, VERSION_TABLE)
    await asyncio.to_thread(command.upgrade, config, "0003")
    engine = db.create_engine(database_url)
    row = {"invocation": 7, "label": "//:t", "status": 3, "rule_type": "sh_test", "language": "sh", "tags": '["a"]',
           "start_usec": 5, "duration_usec": None}
    try:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO invocation_targets VALUES (:invocation, :label, :status, "
                                          ":rule_type, :language, :tags, 2, :start_usec, :duration_usec)"), row)
        await asyncio.to_thread(command.upgrade, config, "0004")
        async with engine.begin() as connection:
            stored = (await connection.execute(text("SELECT * FROM invocation_targets"))).mappings().all()
            assert [{**r, "tags": json.loads(r["tags"]) if isinstance(r["tags"], str) else r["tags"]}
                    for r in stored] == [{**row, "tags": ["a"]}]
            with pytest.raises(IntegrityError):
                await connection.execute(text("INSERT INTO invocation_targets (invocation, label, status, rule_type, "
                                              "language, tags) VALUES (:invocation, :label, 0, '', '', '[]')"), row)
        await asyncio.to_thread(command.downgrade, config, "0003")
        async with engine.connect() as connection:
            sizes = (await connection.execute(text("SELECT test_size FROM invocation_targets"))).scalars().all()
            assert sizes == [0]
    finally:
        await engine.dispose()


async def test_insights_columns_are_filled_in_from_what_is_stored(database_url: str) -> None:
    """0007: stored invocations get their overall status and clipped search columns; stored targets their
    invocation's tenant, time, branch and commit. The downgrade keeps every row."""
    config = db._alembic_config(database_url, MIGRATIONS, VERSION_TABLE)
    await asyncio.to_thread(command.upgrade, config, "0006")
    engine = db.create_engine(database_url)
    stored = {"acme": ("6a0d2f64-8a55-4e0b-9c3c-3f4e2a9a1b10", 1, True),
              "beta": ("7b0d2f64-8a55-4e0b-9c3c-3f4e2a9a1b10", 3, False)}
    try:
        async with engine.begin() as connection:
            for tenant, (invocation_id, status, success) in stored.items():
                await connection.run_sync(_insert_invocation, tenant=tenant, invocation_id=invocation_id,
                                          status=status, success=success, created_at_usec=len(tenant) * 1000,
                                          branch_name=f"{tenant}-main", commit_sha=f"{tenant}-c1", user="u" * 300)
            await connection.execute(text("INSERT INTO invocation_targets (invocation, label, status, rule_type, "
                                          "language, tags) SELECT id, 'lib', 5, '', '', '[]' FROM invocations"))
        await migrate(database_url)
        async with engine.connect() as connection:
            invocations = (await connection.execute(text(
                "SELECT tenant, overall_status, length(\"user\") FROM invocations ORDER BY tenant"))).all()
            assert [tuple(r) for r in invocations] == [("acme", 1, 255), ("beta", 4, 255)]
            targets = (await connection.execute(text("SELECT tenant, created_at_usec, branch_name, commit_sha "
                                                     "FROM invocation_targets ORDER BY tenant"))).all()
            assert [tuple(r) for r in targets] == [("acme", 4000, "acme-main", "acme-c1"),
                                                   ("beta", 4000, "beta-main", "beta-c1")]
        await asyncio.to_thread(command.downgrade, config, "0006")
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM invocation_targets"))).scalar() == 2
            assert (await connection.execute(text("SELECT count(*) FROM invocations"))).scalar() == 2
    finally:
        await engine.dispose()
