"""SearchInvocations: the tenant's invocations by any of their indexed fields, newest first.

Each filter has its own index (tenant, column, created_at_usec, id) (models.SEARCHED; the commit's is
GetInvocation's), so a page is a walk of one index in page order, whatever the tenant's size. Given
several filters, the database walks the index it finds most selective and checks the others on the way.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select, tuple_

from services.common.db import Sessions, reading
from services.common.errors import InvalidArgument
from services.gen.bbapi.api.v1 import insights_pb2
from services.metadata.insights.limits import Window, page_size
from services.metadata.invocations import messages, paging
from services.metadata.invocations.derive import normalize_repo_url
from services.metadata.invocations.sql import index_plans
from services.metadata.models import INDEXED, Invocation

DEFAULT_PAGE, MAX_PAGE = 50, 200
_TEXT = ("repo_url", "branch_name", "commit_sha", "user", "host", "role", "command", "pattern")


def _filters(query: insights_pb2.InvocationQuery) -> dict[str, str | int]:
    """The given filters by column, in the form the ingest stores (normalised repo URL, clipped text)."""
    found: dict[str, str | int] = {}
    for column in _TEXT:
        value: str = getattr(query, column)
        if value:
            found[column] = (normalize_repo_url(value) if column == "repo_url" else value)[:INDEXED]
    if query.status:
        if query.status not in insights_pb2.OverallStatus.values():
            raise InvalidArgument(f"unknown status {query.status}")
        found["overall_status"] = query.status
    return found


async def search_invocations(sessions: Sessions, tenant: str, request: insights_pb2.SearchInvocationsRequest
                             ) -> insights_pb2.SearchInvocationsResponse:
    filters, window = _filters(request.query), Window.of(request.query.created)
    size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
    query_key = ("search", tenant, *window.key(), *(f"{column}={value}" for column, value in filters.items()))
    after = paging.decode(request.page_token, query_key, (int, int))
    conditions: list[ColumnElement[bool]] = [Invocation.tenant == tenant,
                                             *window.conditions(Invocation.created_at_usec)]
    conditions += [getattr(Invocation, column) == value for column, value in filters.items()]
    if after is not None:
        conditions.append(tuple_(Invocation.created_at_usec, Invocation.id) < tuple(after))
    query = (select(Invocation).where(*conditions)
             .order_by(Invocation.created_at_usec.desc(), Invocation.id.desc()).limit(size + 1))
    async with reading(sessions) as session:
        await index_plans(session)
        rows = (await session.scalars(query)).all()
    answer = insights_pb2.SearchInvocationsResponse(invocation=[messages.invocation(row) for row in rows[:size]])
    if len(rows) > size:
        answer.next_page_token = paging.encode(query_key, [rows[size - 1].created_at_usec, rows[size - 1].id])
    return answer
