"""Small helpers for the invocation tables' SQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
CHUNK = 500  # values per IN (...) list: far below SQLite's and asyncpg's parameter limits


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


async def index_plans(session: AsyncSession) -> None:
    """On PostgreSQL, plan this transaction's statements as index walks, each for its own parameters.

    Every statement here reads a few rows through an index that also gives the order (keyset pages,
    lookups by key). Without fresh statistics, right after a large build streamed in, PostgreSQL
    guesses a handful of rows per invocation and prefers a bitmap scan and a sort, which reads the
    whole rest of the invocation to return one page; and a generic plan cached while a table was tiny
    (a sequential scan) survives until autovacuum analyzes it. Both make cost grow with build size.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
            " set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)"))
