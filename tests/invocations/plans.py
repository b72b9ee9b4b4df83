"""The database's own plan for a statement an API call runs: how tests check a page costs the same on a
large table as on a small one, structurally rather than by timing (timings belong in bench/)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import event

from services.common.db import Sessions
from services.metadata.invocations.sql import index_plans


async def plan_of(maker: Sessions, call: Callable[[], Awaitable[object]], table: str) -> str:
    """The plan of the first statement `call` runs that reads `table` with a LIMIT (the page query)."""
    statements: list[tuple[str, object]] = []

    def grab(_conn: object, _cursor: object, statement: str, parameters: object, *_rest: object) -> None:
        statements.append((statement, parameters))

    engine = maker.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", grab)
    try:
        await call()
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    statement, parameters = next((s, p) for s, p in statements if table in s and "LIMIT" in s)
    async with maker.begin() as session:
        await index_plans(session)  # the same planner settings the API's queries run under
        connection = await session.connection()
        explain = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
        rows = await connection.exec_driver_sql(explain + statement, parameters)  # type: ignore[arg-type]
        return "\n".join(" ".join(str(v) for v in row) for row in rows)


def assert_index_walk(plan: str) -> None:
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan  # rows come in page order
    assert "SCAN" not in plan and "Seq Scan" not in plan and "Bitmap" not in plan, plan  # never the whole rest
    assert "USING PRIMARY KEY" in plan or "USING INDEX" in plan or "Index" in plan, plan
