"""`Content-Disposition: attachment` with a file name every client reads (RFC 6266, RFC 8187).

The plain `filename` parameter is an ASCII stand-in (what `curl -J` and old clients use); a name
with other characters is also sent as `filename*=UTF-8''<percent-encoded>`, which browsers and
wget prefer. Directory parts and control characters are dropped: a link names a file, never a
place to write it.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_NOT_TOKEN_SAFE = re.compile(r'[^\x20-\x7e]|["\\%]')


def safe_name(name: str) -> str:
    """The last path segment of `name`, without control characters ("" if nothing is left)."""
    leaf = _UNSAFE.sub("", name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "" if leaf in (".", "..") else leaf


def content_disposition(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = _NOT_TOKEN_SAFE.sub("_", ascii_name) or "download"
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header
