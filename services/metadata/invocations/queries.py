"""The API's answers from the tables: GetInvocation, GetTarget, GetAction (issue 4, DESIGN.md).

Every query is scoped to the caller's tenant first: another tenant's invocation reads exactly like a
missing one. Pages are keyset-paginated on indexed keys (invocations newest first by (created_at, id),
targets by label, actions by event sequence), so a page costs the same on a 100-target and on a
50,000-target invocation. GetTarget and GetAction on a missing invocation answer NOT_FOUND, as the
reference does; GetInvocation answers an empty list.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.common import invocation_ids
from services.common.db import Sessions, reading
from services.common.errors import ApiError, InvalidArgument, NotFound
from services.gen.api.v1 import action_pb2, file_pb2, invocation_pb2, target_pb2
from services.metadata.invocations import ids, messages, paging
from services.metadata.invocations.batch import BUILD_METADATA
from services.metadata.invocations.sql import chunks, index_plans
from services.metadata.models import Action, ActionFile, Artifact, Invocation, InvocationMetadata, Target, TargetTag

INVOCATION_PAGE = 50
TARGET_PAGE = 100
ACTION_PAGE = 200
ACTION_PAGE_FILES = 5_000  # a page of actions stops early once it holds this many files
MAX_ARTIFACTS = 10_000  # per invocation, and per page, in GetInvocation with include_artifacts


def _canonical(invocation_id: str) -> str | None:
    try:
        return invocation_ids.canonical(invocation_id)
    except ApiError:
        return None


async def _invocation(session: AsyncSession, tenant: str, invocation_id: str, what: str) -> int:
    """The row id of the tenant's invocation; NOT_FOUND for an unknown (or another tenant's) id."""
    if not invocation_id:
        raise InvalidArgument(f"{what} must contain a valid invocation_id")
    canonical = _canonical(invocation_id)
    pk = None if canonical is None else await session.scalar(
        select(Invocation.id).where(Invocation.tenant == tenant, Invocation.invocation_id == canonical))
    if pk is None:
        raise NotFound(f"invocation {invocation_id!r} not found")
    return pk


def _page(rows: Sequence[Any], size: int) -> tuple[Sequence[Any], bool]:
    return rows[:size], len(rows) > size


async def get_invocations(sessions: Sessions, tenant: str, request: invocation_pb2.GetInvocationRequest,
                          page_size: int = INVOCATION_PAGE) -> invocation_pb2.GetInvocationResponse:
    selector = request.selector
    if not selector.invocation_id and not selector.commit_sha:
        raise InvalidArgument("InvocationSelector must contain a valid invocation_id or commit_sha")
    canonical = _canonical(selector.invocation_id) if selector.invocation_id else ""
    query_key = ("invocation", tenant, selector.invocation_id, selector.commit_sha)
    after = paging.decode(request.page_token, query_key, (int, int))
    if canonical is None:
        return invocation_pb2.GetInvocationResponse()
    query = select(Invocation).where(Invocation.tenant == tenant)
    if canonical:
        query = query.where(Invocation.invocation_id == canonical)
    if selector.commit_sha:
        query = query.where(Invocation.commit_sha == selector.commit_sha)
    if after is not None:
        query = query.where(tuple_(Invocation.created_at_usec, Invocation.id) < tuple(after))
    query = query.order_by(Invocation.created_at_usec.desc(), Invocation.id.desc()).limit(page_size + 1)
    async with reading(sessions) as session:
        await index_plans(session)
        rows, more = _page((await session.scalars(query)).all(), page_size)
        answer = invocation_pb2.GetInvocationResponse(invocation=[messages.invocation(row) for row in rows])
        if request.include_artifacts:
            rows = await _artifacts(session, rows, answer.invocation)
            more = more or len(rows) < len(answer.invocation)
            del answer.invocation[len(rows):]
        await _include(session, tenant, request, rows, answer.invocation)
    if more:
        answer.next_page_token = paging.encode(query_key, [rows[-1].created_at_usec, rows[-1].id])
    return answer


async def _include(session: AsyncSession, tenant: str, request: invocation_pb2.GetInvocationRequest,
                   rows: Sequence[Invocation], out: Sequence[invocation_pb2.Invocation]) -> None:
    by_pk = {row.id: message for row, message in zip(rows, out, strict=True)}
    if not by_pk:
        return
    if request.include_metadata:
        for entry in await session.scalars(
                select(InvocationMetadata).where(InvocationMetadata.invocation.in_(list(by_pk)))
                .order_by(InvocationMetadata.invocation, InvocationMetadata.kind, InvocationMetadata.sequence,
                          InvocationMetadata.position)):
            target = by_pk[entry.invocation]
            listed = target.build_metadata if entry.kind == BUILD_METADATA else target.workspace_status
            listed.add(key=entry.key, value=entry.value)
    if request.include_child_invocations:
        await _children(session, tenant, rows, out)


async def _artifacts(session: AsyncSession, rows: Sequence[Invocation],
                     out: Sequence[invocation_pb2.Invocation]) -> Sequence[Invocation]:
    """Fill artifacts (at most MAX_ARTIFACTS an invocation) for the leading rows that fit in one page's worth
    of them; the rows kept. The API cannot page artifacts, so pages of invocations get shorter instead."""
    held = 0
    for kept, (row, message) in enumerate(zip(rows, out, strict=True)):
        if kept and held >= MAX_ARTIFACTS:
            return rows[:kept]
        message.artifacts.extend(messages.file(f) for f in await session.scalars(
            select(Artifact).where(Artifact.invocation == row.id)
            .order_by(Artifact.sequence, Artifact.position).limit(MAX_ARTIFACTS)))
        held += len(message.artifacts)
    return rows


async def _children(session: AsyncSession, tenant: str, rows: Sequence[Invocation],
                    out: Sequence[invocation_pb2.Invocation]) -> None:
    """Invocations whose build metadata names this one: PARENT_RUN_ID = its RUN_ID (BuildBuddy's link
    from a workflow to the builds it ran), or PARENT_INVOCATION_ID = its id."""
    parents = {row.invocation_id: message for row, message in zip(rows, out, strict=True)}
    runs = {row.run_id: row.invocation_id for row in rows if row.run_id}
    conditions = [Invocation.parent_invocation_id.in_(list(parents))]
    if runs:
        conditions.append(Invocation.parent_run_id.in_(list(runs)))
    children = await session.execute(
        select(Invocation.invocation_id, Invocation.parent_invocation_id, Invocation.parent_run_id)
        .where(Invocation.tenant == tenant, or_(*conditions))
        .order_by(Invocation.created_at_usec, Invocation.id))
    for child in children:
        parent = (child.parent_invocation_id if child.parent_invocation_id in parents
                  else runs.get(child.parent_run_id))
        if parent is not None and parent != child.invocation_id:
            parents[parent].child_invocations.add(invocation_id=child.invocation_id)


async def get_targets(sessions: Sessions, tenant: str, request: target_pb2.GetTargetRequest,
                      page_size: int = TARGET_PAGE) -> target_pb2.GetTargetResponse:
    """Selectors as in the reference: `label` (exact) wins over `tag`, which wins over `target_id`."""
    selector = request.selector
    query_key = ("target", tenant, selector.invocation_id, selector.label, selector.tag, selector.target_id)
    after = paging.decode(request.page_token, query_key, (str,))
    async with reading(sessions) as session:
        await index_plans(session)
        pk = await _invocation(session, tenant, selector.invocation_id, "TargetSelector")
        query, key = _target_query(pk, selector)
        if after is not None:
            query = query.where(key > after[0])
        rows, more = _page((await session.scalars(query.order_by(key).limit(page_size + 1))).all(), page_size)
    answer = target_pb2.GetTargetResponse(target=[messages.target(selector.invocation_id, row) for row in rows])
    if more:
        answer.next_page_token = paging.encode(query_key, [rows[-1].label])
    return answer


def _target_query(pk: int, selector: target_pb2.TargetSelector) -> tuple[Select[Target], InstrumentedAttribute[str]]:
    """The query and the label column to page on: the tag index's own for a tag, so a page is one walk."""
    query = select(Target).where(Target.invocation == pk)
    if selector.label:
        return query.where(Target.label == selector.label), Target.label
    if selector.tag:
        return query.join(TargetTag, and_(TargetTag.invocation == Target.invocation, TargetTag.label == Target.label)
                          ).where(TargetTag.invocation == pk, TargetTag.tag == selector.tag), TargetTag.label
    if selector.target_id:
        return query.where(Target.label == ids.decode(selector.target_id)), Target.label
    return query, Target.label


async def get_actions(sessions: Sessions, tenant: str, request: action_pb2.GetActionRequest,
                      page_size: int = ACTION_PAGE) -> action_pb2.GetActionResponse:
    """All given selectors must match (AND); target_id takes the encoded or the raw label."""
    selector = request.selector
    query_key = ("action", tenant, selector.invocation_id, selector.target_id, selector.target_label,
                 selector.configuration_id, selector.action_id)
    after = paging.decode(request.page_token, query_key, (int,))
    async with reading(sessions) as session:
        await index_plans(session)
        pk = await _invocation(session, tenant, selector.invocation_id, "ActionSelector")
        query = _action_query(pk, selector)
        if after is not None:
            query = query.where(Action.sequence > after[0])
        rows, more = _page((await session.scalars(query.order_by(Action.sequence).limit(page_size + 1))).all(),
                           page_size)
        files = await _action_files(session, pk, [row.sequence for row in rows])
    answer = action_pb2.GetActionResponse()
    held = 0
    for i, row in enumerate(rows):
        if i and held + len(files[row.sequence]) > ACTION_PAGE_FILES:
            more = True
            break
        held += len(files[row.sequence])
        answer.action.append(messages.action(selector.invocation_id, row, files[row.sequence]))
    if more:
        answer.next_page_token = paging.encode(query_key, [rows[len(answer.action) - 1].sequence])
    return answer


def _action_query(pk: int, selector: action_pb2.ActionSelector) -> Select[Action]:
    query = select(Action).where(Action.invocation == pk)
    for label in {selector.target_label, ids.decode(selector.target_id) if selector.target_id else ""} - {""}:
        query = query.where(Action.target_label == label)
    if selector.configuration_id:
        query = query.where(Action.configuration_id == selector.configuration_id)
    if selector.action_id:
        query = query.where(Action.action_key == ids.decode(selector.action_id))
    return query


async def _action_files(session: AsyncSession, pk: int, sequences: list[int]) -> dict[int, list[file_pb2.File]]:
    files: dict[int, list[file_pb2.File]] = defaultdict(list)
    for some in chunks(sequences):
        for row in await session.scalars(
                select(ActionFile).where(ActionFile.invocation == pk, ActionFile.sequence.in_(some))
                .order_by(ActionFile.sequence, ActionFile.position)):
            files[row.sequence].append(messages.file(row))
    return files
