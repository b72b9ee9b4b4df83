"""What every insight request shares: page sizes with a server cap, and created-at windows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute

from services.common.errors import InvalidArgument
from services.gen.bbapi.api.v1 import insights_pb2


def page_size(requested: int, default: int, cap: int) -> int:
    """0 asks for the default page; more than the cap gets the cap (a page's cost stays bounded)."""
    if requested < 0:
        raise InvalidArgument(f"page_size must not be negative (got {requested})")
    return min(requested or default, cap)


@dataclass(frozen=True)
class Window:
    """Invocations created in [start, end) microseconds; None is an open bound."""

    start: int | None
    end: int | None

    @classmethod
    def of(cls, created: insights_pb2.TimeRange) -> Window:
        return cls(created.start_time.ToMicroseconds() if created.HasField("start_time") else None,
                   created.end_time.ToMicroseconds() if created.HasField("end_time") else None)

    def key(self) -> tuple[str, str]:
        """Its part of a page token's query fingerprint."""
        return str(self.start), str(self.end)

    def conditions(self, column: InstrumentedAttribute[int]) -> list[ColumnElement[bool]]:
        """`column` (microseconds) inside the window; an inverted window matches nothing."""
        found = []
        if self.start is not None:
            found.append(column >= self.start)
        if self.end is not None:
            found.append(column < self.end)
        return found
