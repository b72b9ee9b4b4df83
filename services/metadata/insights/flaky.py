"""GetFlakyTests: the tenant's tests that were reported FLAKY, or both passed and failed on one commit.

A test counts as failing when FAILED or TIMED_OUT. The evidence is every invocation that shows the
flakiness (it reported the test FLAKY, or ran it on a commit where it flipped); tests are ranked by
how many such invocations there are, then by label. The work is one walk of the window's test outcomes
(ix_invocation_targets_outcomes: tenant, status, created_at_usec), which grows with the window, not with
the tenant's history. A window without an end ends at the first page's "now", carried in the page token,
so later pages rank the same invocations.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import CTE, Select, and_, case, func, or_, select

from services.common.db import Sessions, now_usec, reading
from services.gen.api.v1 import common_pb2
from services.gen.bbapi.api.v1 import insights_pb2
from services.metadata.insights.limits import Window, page_size
from services.metadata.invocations import messages, paging
from services.metadata.invocations.sql import index_plans
from services.metadata.models import Invocation, Target

Status = common_pb2.Status
DEFAULT_PAGE, MAX_PAGE = 50, 200
DEFAULT_WINDOW_USEC = 7 * 24 * 3600 * 1_000_000
MAX_INVOCATIONS = 20  # invocation ids listed per test, newest first
_FAILING = (Status.FAILED, Status.TIMED_OUT)
_OUTCOMES = (Status.PASSED, Status.FLAKY, *_FAILING)


def _evidence(tenant: str, start: int, end: int) -> tuple[CTE, CTE]:
    """(evidence: label, invocation, created_at_usec, status of every showing run; flipped: label, commit)."""
    runs = (select(Target.label, Target.commit_sha, Target.status, Target.invocation, Target.created_at_usec)
            .where(Target.tenant == tenant, Target.status.in_(_OUTCOMES), Target.created_at_usec >= start,
                   Target.created_at_usec < end).cte("runs"))
    flipped = (select(runs.c.label, runs.c.commit_sha).where(runs.c.commit_sha != "")
               .group_by(runs.c.label, runs.c.commit_sha)
               .having(func.max(case((runs.c.status == Status.PASSED, 1), else_=0)) == 1,
                       func.max(case((runs.c.status.in_(_FAILING), 1), else_=0)) == 1).cte("flipped"))
    evidence = (select(runs.c.label, runs.c.invocation, runs.c.created_at_usec, runs.c.status)
                .select_from(runs.outerjoin(flipped, and_(flipped.c.label == runs.c.label,
                                                          flipped.c.commit_sha == runs.c.commit_sha)))
                .where(or_(runs.c.status == Status.FLAKY, flipped.c.label.is_not(None))).cte("evidence"))
    return evidence, flipped


def _ranked(tenant: str, start: int, end: int, after: list[Any] | None, size: int) -> Select[Any]:
    evidence, flipped = _evidence(tenant, start, end)
    counts = (select(evidence.c.label, func.count().label("invocations"),
                     func.sum(case((evidence.c.status == Status.FLAKY, 1), else_=0)).label("flaky"),
                     func.max(evidence.c.created_at_usec).label("last_seen"))
              .group_by(evidence.c.label).subquery("counts"))
    flips = select(flipped.c.label, func.count().label("commits")).group_by(flipped.c.label).subquery("flips")
    query = (select(counts, func.coalesce(flips.c.commits, 0).label("commits"))
             .outerjoin(flips, flips.c.label == counts.c.label))
    if after is not None:
        query = query.where(or_(counts.c.invocations < after[0],
                                and_(counts.c.invocations == after[0], counts.c.label > after[1])))
    return query.order_by(counts.c.invocations.desc(), counts.c.label).limit(size + 1)


def _newest(tenant: str, start: int, end: int, labels: list[str]) -> Select[str, str]:
    """The newest MAX_INVOCATIONS showing invocation ids of each label."""
    evidence, _ = _evidence(tenant, start, end)
    numbered = (select(evidence.c.label, Invocation.invocation_id, func.row_number().over(
        partition_by=evidence.c.label,
        order_by=(evidence.c.created_at_usec.desc(), evidence.c.invocation.desc())).label("n"))
        .join(Invocation, Invocation.id == evidence.c.invocation).where(evidence.c.label.in_(labels))
        .subquery("numbered"))
    return (select(numbered.c.label, numbered.c.invocation_id).where(numbered.c.n <= MAX_INVOCATIONS)
            .order_by(numbered.c.label, numbered.c.n))


async def get_flaky_tests(sessions: Sessions, tenant: str, request: insights_pb2.GetFlakyTestsRequest
                          ) -> insights_pb2.GetFlakyTestsResponse:
    window = Window.of(request.created)
    size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
    query_key = ("flaky-tests", tenant, *window.key())
    position = paging.decode(request.page_token, query_key, (int, int, str))
    end = position[0] if position is not None else window.end if window.end is not None else now_usec()
    start = window.start if window.start is not None else end - DEFAULT_WINDOW_USEC
    after = None if position is None else position[1:]
    async with reading(sessions) as session:
        await index_plans(session)
        rows = (await session.execute(_ranked(tenant, start, end, after, size))).all()
        ids: dict[str, list[str]] = defaultdict(list)
        if rows:
            for label, invocation_id in await session.execute(_newest(tenant, start, end,
                                                                      [row.label for row in rows[:size]])):
                ids[label].append(invocation_id)
    answer = insights_pb2.GetFlakyTestsResponse(flaky_test=[
        insights_pb2.FlakyTest(label=row.label, invocation_count=row.invocations, flaky_count=row.flaky,
                               flipped_commit_count=row.commits, invocation_id=ids[row.label],
                               last_seen=messages.timestamp(row.last_seen))
        for row in rows[:size]])
    if len(rows) > size:
        last = rows[size - 1]
        answer.next_page_token = paging.encode(query_key, [end, last.invocations, last.label])
    return answer
