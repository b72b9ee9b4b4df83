"""Where the local store keeps each key on disk, and the start-up scan that finds them again.

    v1/<tenant>/<instance>/cas/<hh>/<hash>-<size>    verified blob contents (uncompressed)
    v1/<tenant>/<instance>/ac/<hh>/<hash>-<size>     serialized ActionResult
    v1/<tenant>/<instance>/cas-blake3/<hh>/...       the same for another digest function
    tmp/                                           uploads in progress (emptied at start)

SHA-256 keeps the plain kind directory (data stored before other functions existed is found as
it was); every other function has `<kind>-<function>` of its own, so the SHA-256 blob and the
BLAKE3 blob of the same bytes are different names.

`<instance>` is the instance name in unpadded base64url ("_" for the empty name), so any
instance name maps to exactly one directory and none can escape the tree. A key's *name* is its
path relative to `v1/`: the index holds names, and a name converts back to its key.
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from pathlib import Path

from services.blobstore.access import Key, Kind, Scope
from services.common.errors import InvalidArgument
from services.common.hashing import BY_LABEL, HEX_LENGTH, DigestFunction
from services.common.resources import SHA256, Digest

_TENANT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_HASH = "|".join(f"[0-9a-f]{{{length}}}" for length in sorted(set(HEX_LENGTH.values())))
_NAME = re.compile(rf"({_HASH})-(\d+)")


def instance_dir(instance_name: str) -> str:
    if not instance_name:
        return "_"
    return base64.urlsafe_b64encode(instance_name.encode()).decode().rstrip("=")


def instance_from_dir(name: str) -> str:
    if name == "_":
        return ""
    return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()


def prefix_of(scope: Scope, kind: Kind) -> str:
    """The part of a name every key of one scope and kind shares (checked once per call, not per key)."""
    if not _TENANT.fullmatch(scope.tenant):
        raise InvalidArgument(f"invalid tenant name {scope.tenant!r}")
    return f"{scope.tenant}/{instance_dir(scope.instance_name)}/{kind_dir(kind, scope.function)}/"


def kind_dir(kind: Kind, function: DigestFunction) -> str:
    return kind.value if function is SHA256 else f"{kind.value}-{function.label}"


def kind_of_dir(name: str) -> tuple[Kind, DigestFunction]:
    """The kind and digest function a kind directory stands for (the inverse of `kind_dir`)."""
    kind, _, function = name.partition("-")
    return Kind(kind), BY_LABEL[function] if function else SHA256


def name_in(prefix: str, digest: Digest) -> str:
    return f"{prefix}{digest.hash[:2]}/{digest.hash}-{digest.size}"


def name_of(scope: Scope, kind: Kind, digest: Digest) -> str:
    return name_in(prefix_of(scope, kind), digest)


def key_of(name: str) -> Key:
    tenant, instance, directory, _hh, leaf = name.split("/")
    match = _NAME.fullmatch(leaf)
    assert match is not None
    kind, function = kind_of_dir(directory)
    return Key(Scope(tenant, instance_from_dir(instance), function), kind, Digest(match[1], int(match[2])))


class Layout:
    def __init__(self, root: Path) -> None:
        self.store = root / "v1"
        self.tmp = root / "tmp"

    def path(self, name: str) -> Path:
        return self.store / name

    def temp(self) -> Path:
        return self.tmp / uuid.uuid4().hex

    def scan(self) -> list[tuple[str, int, float]]:
        """Create the layout, drop abandoned uploads; every stored (name, size, mtime)."""
        self.store.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        found: list[tuple[str, int, float]] = []
        for dirpath, _dirs, files in os.walk(self.store):
            for leaf in files:
                if not _NAME.fullmatch(leaf):
                    continue
                full = os.path.join(dirpath, leaf)
                st = os.stat(full)
                found.append((os.path.relpath(full, self.store), st.st_size, st.st_mtime))
        return found
