"""Tables owned by the logs service.

A log is a sequence of sealed chunks (~2 MB each, never split inside a UTF-8 character) and a
live tail of appended parts not yet sealed. Appends only insert a part, so a running build's log
costs O(text) to write; when the tail reaches a chunk's size it is sealed in the same
transaction. Byte positions never move: chunk N is exactly the text the tail held at that point.
Retention (services.logs.expiry) deletes a log's chunks last-first, so what remains reads as a
shorter log, never one with holes.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class LogStream(Base):
    __tablename__ = "log_streams"
    __table_args__ = (Index("ix_log_streams_activity", "tenant", "updated_at_usec"),)

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    invocation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    sealed_chunks: Mapped[int] = mapped_column(Integer, default=0)
    tail_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    # Last open, append or finish: retention counts from it, so a running build's log never expires.
    updated_at_usec: Mapped[int] = mapped_column(BigInteger)


class LogChunk(Base):
    __tablename__ = "log_chunks"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    invocation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    chunk_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class LogPart(Base):
    __tablename__ = "log_parts"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    invocation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
