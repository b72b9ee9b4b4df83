"""GetTargetHistory: one label across the tenant's invocations, newest first.

Target rows carry their invocation's tenant, creation time, branch and commit (models.Target), so a
page walks ix_invocation_targets_history (or its branch twin) in page order and looks up only the
invocation ids of the rows it returns.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Row, select, tuple_

from services.common.db import Sessions, reading
from services.common.errors import InvalidArgument
from services.gen.api.v1 import common_pb2
from services.gen.bbapi.api.v1 import insights_pb2
from services.metadata.insights.limits import Window, page_size
from services.metadata.invocations import ids, messages, paging
from services.metadata.invocations.sql import index_plans
from services.metadata.models import INDEXED, Invocation, Target

DEFAULT_PAGE, MAX_PAGE = 100, 500


def _run(row: Row[str, Target]) -> insights_pb2.TargetRun:
    invocation_id, target = row
    run = insights_pb2.TargetRun(invocation_id=invocation_id, status=common_pb2.Status.ValueType(target.status),
                                 commit_sha=target.commit_sha, branch_name=target.branch_name,
                                 created=messages.timestamp(target.created_at_usec))
    if target.duration_usec is not None:
        run.timing.CopyFrom(messages.timing(target))
    return run


async def get_target_history(sessions: Sessions, tenant: str, request: insights_pb2.GetTargetHistoryRequest
                             ) -> insights_pb2.GetTargetHistoryResponse:
    if not request.label:
        raise InvalidArgument("GetTargetHistoryRequest must contain a label")
    label, branch, window = ids.decode(request.label), request.branch_name[:INDEXED], Window.of(request.created)
    size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
    query_key = ("target-history", tenant, label, branch, *window.key())
    after = paging.decode(request.page_token, query_key, (int, int))
    conditions: list[ColumnElement[bool]] = [Target.tenant == tenant, Target.label == label,
                                             *window.conditions(Target.created_at_usec)]
    if branch:
        conditions.append(Target.branch_name == branch)
    if after is not None:
        conditions.append(tuple_(Target.created_at_usec, Target.invocation) < tuple(after))
    query = (select(Invocation.invocation_id, Target).join(Invocation, Invocation.id == Target.invocation)
             .where(*conditions).order_by(Target.created_at_usec.desc(), Target.invocation.desc()).limit(size + 1))
    async with reading(sessions) as session:
        await index_plans(session)
        rows = (await session.execute(query)).all()
    answer = insights_pb2.GetTargetHistoryResponse(run=[_run(row) for row in rows[:size]])
    if len(rows) > size:
        last = rows[size - 1][1]
        answer.next_page_token = paging.encode(query_key, [last.created_at_usec, last.invocation])
    return answer
