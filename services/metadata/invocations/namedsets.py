"""Resolving NamedSetOfFiles ids to files, the way TargetComplete's output groups refer to them.

Sets nest, and a build can post tens of thousands of them, so they live in the database; a bounded LRU
keeps the recent ones (a TargetComplete usually follows its sets closely) and misses are read back one
nesting level per query. A set id means one set for the whole stream, so cached entries never go stale.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.metadata.invocations.files import FileRow
from services.metadata.invocations.sql import chunks
from services.metadata.models import Artifact, NamedSet

CACHE_FILES = 50_000  # files held by the cache, over all sets
MAX_RESOLVED = 10_000  # files one action takes from its sets; the rest stay in the artifacts


@dataclass(frozen=True, slots=True)
class SetEntry:
    files: tuple[FileRow, ...]
    children: tuple[str, ...]


class NamedSets:
    def __init__(self, invocation: int) -> None:
        self.invocation = invocation
        self._cache: OrderedDict[str, SetEntry] = OrderedDict()
        self._cached_files = 0

    def remember(self, set_id: str, entry: SetEntry) -> None:
        if set_id in self._cache:
            self._cached_files -= len(self._cache.pop(set_id).files)
        self._cache[set_id] = entry
        self._cached_files += len(entry.files)
        while self._cached_files > CACHE_FILES and len(self._cache) > 1:
            self._cached_files -= len(self._cache.popitem(last=False)[1].files)

    async def resolve(self, session: AsyncSession, set_ids: list[str]) -> list[FileRow]:
        """The files of the sets and of all sets they include, each set once, depth first in order."""
        entries: dict[str, SetEntry] = {}
        pending = list(dict.fromkeys(set_ids))
        while pending:
            missing = [i for i in pending if i not in entries and not self._hit(i, entries)]
            if missing:
                entries.update(await self._load(session, missing))
            pending = [c for i in pending if i in entries for c in entries[i].children if c not in entries]
        return _flatten(set_ids, entries)

    def _hit(self, set_id: str, entries: dict[str, SetEntry]) -> bool:
        entry = self._cache.get(set_id)
        if entry is None:
            return False
        self._cache.move_to_end(set_id)
        entries[set_id] = entry
        return True

    async def _load(self, session: AsyncSession, set_ids: list[str]) -> dict[str, SetEntry]:
        rows: list[Row[tuple[str, int, list[str]]]] = []
        for chunk in chunks(set_ids):
            rows.extend(await session.execute(
                select(NamedSet.set_id, NamedSet.sequence, NamedSet.children)
                .where(NamedSet.invocation == self.invocation, NamedSet.set_id.in_(chunk))))
        rows.sort(key=lambda row: row.sequence)
        latest = {row.set_id: row for row in rows}  # a stream that repeats an id: the last set wins
        files: dict[int, list[FileRow]] = {row.sequence: [] for row in latest.values()}
        for sequences in chunks(list(files)):
            for f in await session.execute(
                    select(Artifact.sequence, Artifact.name, Artifact.uri, Artifact.hash, Artifact.size_bytes)
                    .where(Artifact.invocation == self.invocation, Artifact.sequence.in_(sequences))
                    .order_by(Artifact.sequence, Artifact.position)):
                files[f.sequence].append(FileRow(f.name, f.uri, f.hash, f.size_bytes))
        loaded = {set_id: SetEntry(tuple(files[row.sequence]), tuple(row.children)) for set_id, row in latest.items()}
        for set_id, entry in loaded.items():
            self.remember(set_id, entry)
        return loaded


def _flatten(set_ids: list[str], entries: dict[str, SetEntry]) -> list[FileRow]:
    """Each set's files, then its children's, depth first; every set once, at most MAX_RESOLVED files."""
    out: list[FileRow] = []
    seen: set[str] = set()
    stack = list(reversed(set_ids))
    while stack and len(out) < MAX_RESOLVED:
        set_id = stack.pop()
        if set_id in seen or set_id not in entries:
            continue
        seen.add(set_id)
        out.extend(entries[set_id].files[:MAX_RESOLVED - len(out)])
        stack.extend(reversed(entries[set_id].children))
    return out
