"""Durations as people write them (`30d`, `12h`, `90m`, `45s`; `0` for forever), for retention.

A `Duration` is an int of seconds that prints back the way it was written, like pydantic's
ByteSize, so settings, flags, the CRD and `bbapi retention` all speak the same units.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
PATTERN = r"^(0|[0-9]+[dhms])$"  # the CRD validates the same spelling
_FORMAT = re.compile(PATTERN)


class Duration(int):
    """Seconds; 0 means forever."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return cls(value)
        text = value.strip() if isinstance(value, str) else ""
        if _FORMAT.fullmatch(text):
            return cls(0 if text == "0" else int(text[:-1]) * UNITS[text[-1]])
        raise ValueError(f"invalid duration {value!r}: write a number with a unit (30d, 12h, 90m, 45s), "
                         "or 0 for forever")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"))

    def __str__(self) -> str:
        if self == 0:
            return "0"
        unit = next(u for u, size in UNITS.items() if self % size == 0)
        return f"{self // UNITS[unit]}{unit}"

    __repr__ = __str__

    def describe(self) -> str:
        """For people: `30d`, or `forever`."""
        return "forever" if self == 0 else str(self)
