"""Storing a Build Event Service stream: exactly once per event, durably before the ack, resumable.

An invocation is claimed by each stream that opens it (attempt + 1), and every append proves its claim
in the same transaction as its writes, so a stale stream (one a retry replaced, possibly on another
replica) can never write again. Each append is one transaction: the raw events and every indexed row
they produce commit together, or nothing does. What deriving needs between appends is small and
lives on the invocation row, so a retried stream resumes anywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import invocation_ids
from services.common.db import Sessions, now_usec
from services.common.errors import AlreadyExists, FailedPrecondition
from services.gen.api.v1 import invocation_pb2
from services.gen.bbapi.api.v1 import insights_pb2
from services.metadata.invocations import batch, store
from services.metadata.invocations.derive import Fields
from services.metadata.invocations.namedsets import NamedSets
from services.metadata.models import Invocation

Status = invocation_pb2.InvocationStatus
COMPLETE, PARTIAL, DISCONNECTED = (Status.COMPLETE_INVOCATION_STATUS, Status.PARTIAL_INVOCATION_STATUS,
                                   Status.DISCONNECTED_INVOCATION_STATUS)
STATUS_NAMES: dict[int, str] = {COMPLETE: "COMPLETE", PARTIAL: "PARTIAL", DISCONNECTED: "DISCONNECTED"}
_OVERALL: dict[int, int] = {PARTIAL: insights_pb2.IN_PROGRESS, DISCONNECTED: insights_pb2.DISCONNECTED}


def overall_status(status: int, success: bool) -> int:
    """The OverallStatus SearchInvocations filters by: a complete invocation succeeded or failed."""
    if status == COMPLETE:
        return insights_pb2.SUCCESS if success else insights_pb2.FAILURE
    return _OVERALL.get(status, insights_pb2.UNKNOWN_OVERALL_STATUS)


_INVOCATIONS = cast(Table, Invocation.__table__)


class InvocationStore:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def open(self, tenant: str, invocation_id: str, key_id: str, secrets: Collection[str],
                   build_id_hash: str = "") -> IngestStream:
        """Create the invocation or take it over from an earlier stream of the same build (a retry).

        A stream of another build (another BES build_id) is refused before anything is acknowledged:
        an invocation id names one build, and a second build reusing it must not be half merged into the
        first nor acknowledged and dropped, whichever has more events."""
        invocation_id = invocation_ids.canonical(invocation_id)
        for _ in range(2):  # a concurrent first open may win the insert; then this one resumes it
            try:
                async with self.sessions.begin() as session:
                    row = (await _claim(session, tenant, invocation_id, build_id_hash)
                           or await _create(session, tenant, invocation_id, key_id, build_id_hash))
                    return IngestStream(self.sessions, row, secrets)
            except IntegrityError:
                continue
        raise FailedPrecondition(f"invocation {invocation_id} is being opened concurrently; retry")


async def _claim(session: AsyncSession, tenant: str, invocation_id: str, build_id_hash: str) -> Invocation | None:
    claimed = await session.execute(
        update(Invocation).where(Invocation.tenant == tenant, Invocation.invocation_id == invocation_id,
                                 Invocation.build_id_hash.in_(("", build_id_hash)))
        .values(attempt=Invocation.attempt + 1)
        .execution_options(synchronize_session=False))
    if claimed.rowcount == 0:  # type: ignore[attr-defined]
        if await session.scalar(select(Invocation.id).where(Invocation.tenant == tenant,
                                                            Invocation.invocation_id == invocation_id)):
            raise AlreadyExists(f"invocation {invocation_id} belongs to another build (another BES build_id): "
                                "give each build its own --invocation_id")
        return None
    row = await session.scalar(select(Invocation).where(Invocation.tenant == tenant,
                                                        Invocation.invocation_id == invocation_id))
    if row is not None and row.status != COMPLETE:
        row.status, row.overall_status, row.updated_at_usec = PARTIAL, insights_pb2.IN_PROGRESS, now_usec()
    return row


async def _create(session: AsyncSession, tenant: str, invocation_id: str, key_id: str,
                  build_id_hash: str) -> Invocation:
    now = now_usec()
    row = Invocation(tenant=tenant, invocation_id=invocation_id, key_id=key_id, build_id_hash=build_id_hash,
                     attempt=1, last_sequence=0,
                     status=PARTIAL, overall_status=insights_pb2.IN_PROGRESS, created_at_usec=now,
                     updated_at_usec=now, **Fields().columns())
    session.add(row)
    await session.flush()
    return row


class IngestStream:
    """One stream's writer. Callers batch events (a few hundred per append is efficient), ack up to the
    returned sequence number, and call one method at a time (a stream is not safe for concurrent use).
    The stream holds only bounded state: the derived fields and a named-set cache."""

    def __init__(self, sessions: Sessions, row: Invocation,
                 secrets: Collection[str]) -> None:
        self.sessions = sessions
        self.invocation_id = row.invocation_id
        self.last_sequence = row.last_sequence
        self._pk, self._attempt, self._status = row.id, row.attempt, row.status
        self._owner = store.Owner(row.tenant, row.created_at_usec)
        self._fields = Fields.of(row)
        self._secrets = tuple(s for s in secrets if s)
        self._named_sets = NamedSets(row.id)
        self._closed = False

    async def append(self, events: Sequence[tuple[int, bytes]]) -> int:
        """Store the events after last_sequence (earlier ones are duplicates of stored events) and return
        the new last_sequence once committed. A gap or an undecodable event stores nothing."""
        fresh = self._fresh(events)
        if not fresh:
            return self.last_sequence
        if self._closed or self._status == COMPLETE:
            raise FailedPrecondition(f"invocation {self.invocation_id} is already complete"
                                     if self._status == COMPLETE else "this stream is finished")
        decoded = batch.decode(fresh)
        fields = self._fields.copy()
        rows = batch.index(self._pk, decoded, fields, self._secrets, self._named_sets)
        last = fresh[-1][0]
        owner = self._owner.of(fields)
        async with self.sessions.begin() as session:
            await self._update(session, last_sequence=last, **fields.changes(self._fields))
            await store.write(session, self._pk, owner, rows, self._named_sets)
            if owner != self._owner.of(self._fields):
                await store.restamp_targets(session, self._pk, owner)
        self._fields, self.last_sequence = fields, last
        return last

    def _fresh(self, events: Sequence[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        fresh: list[tuple[int, bytes]] = []
        expected = self.last_sequence + 1
        for sequence, payload in events:
            if sequence < expected:
                continue
            if sequence > expected:
                raise FailedPrecondition(f"invocation {self.invocation_id}: event {sequence} leaves a gap "
                                         f"(expected {expected}); re-send from {self.last_sequence + 1}")
            fresh.append((sequence, payload))
            expected += 1
        return fresh

    async def finish(self) -> str:
        """The client ended the stream: COMPLETE if BuildFinished was stored, else DISCONNECTED (which a
        retry may still resume). COMPLETE is final: new events for the invocation are refused."""
        status = COMPLETE if self._fields.finished else DISCONNECTED
        if not self._closed and self._status != COMPLETE:
            async with self.sessions.begin() as session:
                await self._update(session, status=status, overall_status=overall_status(status, self._fields.success))
        self._status, self._closed = status, True
        return STATUS_NAMES[status]

    async def disconnect(self) -> None:
        """The stream broke off before `finish`: DISCONNECTED, unless the invocation is complete or a newer
        stream (Bazel's retry) has already claimed it. Never raises for a lost claim: nothing is left to do."""
        if self._closed or self._status == COMPLETE:
            return
        self._closed = True
        try:
            async with self.sessions.begin() as session:
                await self._update(session, status=DISCONNECTED,
                                   overall_status=overall_status(DISCONNECTED, self._fields.success))
        except FailedPrecondition:
            return
        self._status = DISCONNECTED

    async def _update(self, session: AsyncSession, **values: object) -> None:
        """Write the invocation row if this stream still holds the claim (first, so it locks the row)."""
        done = await session.execute(
            update(_INVOCATIONS).where(_INVOCATIONS.c.id == self._pk, _INVOCATIONS.c.attempt == self._attempt)
            .values(updated_at_usec=now_usec(), **values))
        if done.rowcount == 0:  # type: ignore[attr-defined]
            raise FailedPrecondition(f"invocation {self.invocation_id} was taken over by a newer stream")
