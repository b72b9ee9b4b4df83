"""The SQL of retention: which tables hold an invocation's rows, bounded deletes, counts."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CompoundSelect, Select, Table, delete, func, select, tuple_
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from services.metadata.models import Base

# Every table keyed by `invocations.id` (models.py: their primary key starts with `invocation`),
# found from the models so a table added later is expired too.
CHILD_TABLES: tuple[Table, ...] = tuple(
    table for table in Base.metadata.sorted_tables
    if "invocation" in table.c and table.c.invocation.primary_key)


async def delete_rows_of(session: AsyncSession, table: Table, invocation: int, limit: int) -> int:
    """Delete at most `limit` of one invocation's rows of `table`; returns how many went."""
    rest = [column for column in table.primary_key.columns if column.name != "invocation"]
    some = select(*rest).where(table.c.invocation == invocation).limit(limit)
    done = await session.execute(delete(table).where(table.c.invocation == invocation, tuple_(*rest).in_(some)))
    return cast(CursorResult[tuple[()]], done).rowcount


async def count(session: AsyncSession, query: Select[Any] | CompoundSelect[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
