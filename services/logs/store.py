"""Build logs: append console text in event order, seal ~2 MB chunks, page them out head first.

Page tokens name a byte position, (chunk, offset), and the invocation they belong to: the first
page is chunk 0; a sealed chunk's page returns the rest of that chunk and points at the next;
the live tail's page returns what is there and points just past it, so a client following a
running build polls with the token it got and never receives text twice. A token of another
invocation, or one naming a position this log does not have, is INVALID_ARGUMENT, as the other
methods' tokens are. BuildBuddy's 4-hex chunk ids ("0000") are accepted too.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Sessions, now_usec, reading
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.gen.api.v1 import log_pb2
from services.logs import metrics
from services.logs.models import LogChunk, LogPart, LogStream

CHUNK_BYTES = 2_000_000
_HEX_TOKEN = re.compile(r"[0-9a-fA-F]{4}")


def utf8_cut(data: bytes, limit: int) -> int:
    """The largest cut point <= limit that does not split a UTF-8 character."""
    if limit >= len(data):
        return len(data)
    cut = limit
    while cut > 0 and (data[cut] & 0xC0) == 0x80:  # continuation byte: back off to the start
        cut -= 1
    return cut or limit


@dataclass
class LogWriter:
    """Appends one invocation's console text; every call is one transaction."""

    sessions: Sessions
    tenant: str
    invocation_id: str
    last_sequence: int

    async def append(self, entries: Sequence[tuple[int, bytes]]) -> int:
        """Store entries after last_sequence (earlier ones are retries: dropped); refuse gaps."""
        async with self.sessions.begin() as session:
            stream = await _locked_stream(session, self.tenant, self.invocation_id)
            fresh = [(seq, text) for seq, text in entries if seq > stream.last_sequence]
            if not fresh:
                self.last_sequence = stream.last_sequence
                return self.last_sequence
            if stream.finished:
                raise FailedPrecondition(f"log of {self.invocation_id} is complete: nothing can be added")
            if fresh[0][0] != stream.last_sequence + 1:
                raise FailedPrecondition(f"log of {self.invocation_id}: expected sequence "
                                         f"{stream.last_sequence + 1}, got {fresh[0][0]}")
            for (previous, _), (current, _) in itertools.pairwise(fresh):
                if current != previous + 1:
                    raise FailedPrecondition(f"log of {self.invocation_id}: sequence {previous} "
                                             f"is followed by {current}")
            text = b"".join(t for _, t in fresh)
            if text:
                session.add(LogPart(tenant=self.tenant, invocation_id=self.invocation_id,
                                    sequence=fresh[0][0], data=text))
                stream.tail_bytes += len(text)
                metrics.LOG_BYTES.inc(len(text))
                if stream.tail_bytes >= CHUNK_BYTES:
                    await session.flush()
                    await _seal(session, stream, final=False)
            stream.last_sequence, stream.updated_at_usec = fresh[-1][0], now_usec()
        self.last_sequence = fresh[-1][0]
        return self.last_sequence

    async def finish(self) -> None:
        """Seal whatever is left: the log is complete."""
        async with self.sessions.begin() as session:
            stream = await _locked_stream(session, self.tenant, self.invocation_id)
            await _seal(session, stream, final=True)
            stream.finished, stream.updated_at_usec = True, now_usec()


async def _locked_stream(session: AsyncSession, tenant: str, invocation_id: str) -> LogStream:
    stream = await session.scalar(select(LogStream).where(LogStream.tenant == tenant,
                                                          LogStream.invocation_id == invocation_id)
                                  .with_for_update())
    if stream is None:
        raise NotFound(f"no log stream for {invocation_id}")
    return stream


async def _seal(session: AsyncSession, stream: LogStream, final: bool) -> None:
    """Move the tail's parts into sealed chunks; unless final, a remainder stays in the tail."""
    where = (LogPart.tenant == stream.tenant, LogPart.invocation_id == stream.invocation_id)
    parts = (await session.scalars(select(LogPart).where(*where).order_by(LogPart.sequence))).all()
    if not parts:
        return
    first_sequence = parts[0].sequence
    tail = b"".join(p.data for p in parts)
    await session.execute(delete(LogPart).where(*where))
    while len(tail) >= CHUNK_BYTES or (final and tail):
        cut = utf8_cut(tail, CHUNK_BYTES)
        session.add(LogChunk(tenant=stream.tenant, invocation_id=stream.invocation_id,
                             chunk_index=stream.sealed_chunks, data=tail[:cut]))
        stream.sealed_chunks += 1
        tail = tail[cut:]
    if tail:
        session.add(LogPart(tenant=stream.tenant, invocation_id=stream.invocation_id,
                            sequence=first_sequence, data=tail))
    stream.tail_bytes = len(tail)


class LogStore:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def open(self, tenant: str, invocation_id: str) -> LogWriter:
        """Start or resume the log of an invocation (a retried stream continues where it stopped)."""
        async with self.sessions.begin() as session:
            stream = await session.get(LogStream, (tenant, invocation_id))
            if stream is None:
                stream = LogStream(tenant=tenant, invocation_id=invocation_id, last_sequence=0,
                                   sealed_chunks=0, tail_bytes=0, finished=False, updated_at_usec=now_usec())
                session.add(stream)
            else:
                stream.updated_at_usec = now_usec()  # a resumed stream is activity
            last = stream.last_sequence
        return LogWriter(self.sessions, tenant, invocation_id, last)

    async def get_log(self, tenant: str, request: log_pb2.GetLogRequest) -> log_pb2.GetLogResponse:
        invocation_id = request.selector.invocation_id
        if not invocation_id:
            raise InvalidArgument("selector.invocation_id is required")
        chunk, offset = decode_token(request.page_token, invocation_id)
        async with reading(self.sessions) as session:
            stream = await session.get(LogStream, (tenant, invocation_id))
            if stream is None:
                raise NotFound(f"no log for invocation {invocation_id}")
            if chunk < stream.sealed_chunks:
                row = await session.get(LogChunk, (tenant, invocation_id, chunk))
                text = row.data if row is not None else b""
                more = chunk + 1 < stream.sealed_chunks or not stream.finished
                token = encode_token(invocation_id, chunk + 1, 0) if more else ""
            elif chunk == stream.sealed_chunks and not stream.finished:
                parts = await session.scalars(select(LogPart.data).where(
                    LogPart.tenant == tenant, LogPart.invocation_id == invocation_id).order_by(LogPart.sequence))
                text = b"".join(parts)
                token = encode_token(invocation_id, chunk, len(text))
            else:
                text, token = b"", ""
            if chunk > stream.sealed_chunks or offset > len(text):
                raise InvalidArgument(f"page_token names a position past the end of the log of {invocation_id}")
            data = text[offset:]
        return log_pb2.GetLogResponse(
            log=log_pb2.Log(id=log_pb2.Log.Id(invocation_id=invocation_id),
                            contents=data.decode("utf-8", "replace")),
            next_page_token=token)


def _owner(invocation_id: str) -> str:
    return hashlib.sha256(invocation_id.encode()).hexdigest()[:12]


def encode_token(invocation_id: str, chunk: int, offset: int) -> str:
    return base64.urlsafe_b64encode(f"log:{_owner(invocation_id)}:{chunk}:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str, invocation_id: str) -> tuple[int, int]:
    """(chunk, offset) of a token of this invocation's log; whether the log has that position is
    for the caller, which knows the log."""
    if not token:
        return 0, 0
    if _HEX_TOKEN.fullmatch(token):
        return int(token, 16), 0
    try:
        kind, owner, chunk, offset = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(f"invalid page_token {token!r}") from None
    if kind != "log" or not chunk.isdigit() or not offset.isdigit():
        raise InvalidArgument(f"invalid page_token {token!r}")
    if owner != _owner(invocation_id):
        raise InvalidArgument("page_token belongs to another invocation's log")
    return int(chunk), int(offset)
