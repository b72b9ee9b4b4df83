"""Tables owned by the logs service.

A log is a sequence of sealed chunks (~2 MB each, never split inside a UTF-8 character) and a
live tail of appended parts not yet sealed. Appends only insert a part, so a running build's log
costs O(text) to write; when the tail reaches a chunk's size it is sealed in the same
transaction. Byte positions never move: chunk N is exactly the text the tail held at that point.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class LogStream(Base):
    __tablename__ = "log_streams"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    invocation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    sealed_chunks: Mapped[int] = mapped_column(Integer, default=0)
    tail_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)


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
