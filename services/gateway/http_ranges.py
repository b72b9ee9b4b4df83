"""HTTP byte ranges and entity tags (RFC 9110 sections 13-14), for downloads that resume.

One range per request is served (what `curl -C -`, `wget -c` and browsers resuming send); a
header the server cannot or need not honour (several ranges, a unit other than bytes, bad
syntax) is ignored, which RFC 9110 allows: the answer is then the whole file with 200.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes [start, end] of a file of `size` bytes (inclusive, as Content-Range writes them)."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class Unsatisfiable(Exception):
    """The range lies wholly past the file's end: 416 with `Content-Range: bytes */size`."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the requested range is outside the file's {size} bytes")
        self.content_range = f"bytes */{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range `header` asks for, clamped to the file; None to send the whole file."""
    if not header:
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        return None  # several ranges, another unit, or nonsense: ignored
    first, last = match[1], match[2]
    if not first:
        if not last:
            return None
        suffix = int(last)  # bytes=-N: the last N bytes
        if suffix == 0 or size == 0:
            raise Unsatisfiable(size)
        return ByteRange(max(size - suffix, 0), size - 1, size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid syntax: ignored
    if start >= size:
        raise Unsatisfiable(size)
    return ByteRange(start, min(end, size - 1), size)


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """Whether If-None-Match names `etag` (weak comparison, `*` matches anything stored)."""
    if not header:
        return False
    bare = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == bare for tag in _tags(header))


def range_applies(if_range: str | None, etag: str) -> bool:
    """If-Range: the range is served only if the validator is still `etag` (strong comparison; a
    date never is, as blobs carry no Last-Modified)."""
    return if_range is None or (not etag.startswith("W/") and if_range.strip() == etag)
