"""Writing one batch's rows inside the append's transaction: bulk inserts, one merge for targets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations import targets
from services.metadata.invocations.actions import ActionRecord
from services.metadata.invocations.batch import Batch
from services.metadata.invocations.derive import Fields
from services.metadata.invocations.namedsets import NamedSets
from services.metadata.invocations.sql import chunks, index_plans
from services.metadata.invocations.targets import TargetRow
from services.metadata.models import (
    INDEXED,
    Action,
    ActionFile,
    Artifact,
    InvocationEvent,
    InvocationMetadata,
    NamedSet,
    Target,
    TargetTag,
)


@dataclass(frozen=True)
class Owner:
    """What a target row carries of its invocation (models.Target): fixed at creation, and the branch and
    commit the events have named so far."""

    tenant: str
    created_at_usec: int
    branch_name: str = ""
    commit_sha: str = ""

    def of(self, fields: Fields) -> Owner:
        return replace(self, branch_name=fields.branch_name, commit_sha=fields.commit_sha)


async def write(session: AsyncSession, invocation: int, owner: Owner, batch: Batch, named_sets: NamedSets) -> None:
    """Everything the batch adds; targets and actions last, as they read what the batch itself stored."""
    await index_plans(session)
    for model, rows in ((InvocationEvent, batch.events), (InvocationMetadata, batch.metadata),
                        (NamedSet, batch.named_sets), (Artifact, batch.artifacts)):
        await _insert(session, model, rows)
    await _merge_targets(session, invocation, owner, batch.target_events)
    await _insert_actions(session, invocation, batch.actions, named_sets)


async def _insert(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """A Core executemany: the ORM's bulk path costs more in Python than the database spends."""
    if rows:
        await session.execute(insert(model.__table__), rows)


_TARGET = cast(Table, Target.__table__)
_UPDATE_TARGET = update(_TARGET).where(_TARGET.c.invocation == bindparam("key_invocation"),
                                        _TARGET.c.label == bindparam("key_label"))


async def restamp_targets(session: AsyncSession, invocation: int, owner: Owner) -> None:
    """The invocation's branch or commit changed: its stored targets take the new ones (usually none is
    stored yet, as Bazel names both before any target)."""
    await session.execute(update(Target).where(Target.invocation == invocation)
                          .values(branch_name=owner.branch_name, commit_sha=owner.commit_sha))


async def _merge_targets(session: AsyncSession, invocation: int, owner: Owner,
                         events: list[tuple[str, bes.BuildEvent]]) -> None:
    """Fold the batch's target events into the stored rows: one read, then bulk insert and update."""
    if not events:
        return
    stored = await _load_targets(session, invocation, list(dict.fromkeys(label for label, _ in events)))
    merged: dict[str, TargetRow] = {}
    for label, event in events:
        row = merged.get(label) or (stored[label].copy() if label in stored else None)
        merged[label] = targets.apply(row, label, event)
    new = [row for label, row in merged.items() if label not in stored]
    changed = [row for label, row in merged.items() if label in stored and row != stored[label]]
    await _insert(session, Target, [{"invocation": invocation, **asdict(owner), **row.columns()} for row in new])
    if changed:
        await session.execute(_UPDATE_TARGET, [{"key_invocation": invocation, "key_label": row.label, **row.columns()}
                                               for row in changed])
    retagged = [row for row in changed if row.tags != stored[row.label].tags]
    for some in chunks([row.label for row in retagged]):
        await session.execute(delete(TargetTag).where(TargetTag.invocation == invocation, TargetTag.label.in_(some)))
    await _insert(session, TargetTag, [{"invocation": invocation, "tag": tag, "label": row.label}
                                       for row in (*new, *retagged) for tag in _tags(row)])


def _tags(row: TargetRow) -> list[str]:
    return list(dict.fromkeys(tag[:INDEXED] for tag in row.tags))


async def _load_targets(session: AsyncSession, invocation: int, labels: list[str]) -> dict[str, TargetRow]:
    stored: dict[str, TargetRow] = {}
    for some in chunks(labels):
        for row in await session.scalars(select(Target).where(Target.invocation == invocation,
                                                              Target.label.in_(some))):
            stored[row.label] = TargetRow(row.label, row.status, row.rule_type, row.language, list(row.tags),
                                          row.start_usec, row.duration_usec)
    return stored


async def _insert_actions(session: AsyncSession, invocation: int, actions: list[ActionRecord],
                          named_sets: NamedSets) -> None:
    files: list[dict[str, Any]] = []
    for action in actions:
        resolved = await named_sets.resolve(session, action.file_sets) if action.file_sets else []
        unique = list(dict.fromkeys((*resolved, *action.files)))
        files.extend({"invocation": invocation, "sequence": action.sequence, "position": i, **f._asdict()}
                     for i, f in enumerate(unique))
    await _insert(session, Action, [
        {"invocation": invocation, "sequence": a.sequence, "target_label": a.target_label,
         "configuration_id": a.configuration_id, "action_key": a.action_key, "shard": a.shard, "run": a.run,
         "attempt": a.attempt} for a in actions])
    await _insert(session, ActionFile, files)
