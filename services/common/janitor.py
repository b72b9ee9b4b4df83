"""The retention janitor's loop, shared by the metadata and logs services.

A janitor runs one sweep per interval as a background task of its service. A sweep deletes
expired data in bounded batches: each batch is its own short transaction, with a pause after it,
so ingestion and queries get the database in between (SQLite has one writer). A dry run reports
what a sweep would delete and deletes nothing.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge
from pydantic import Field

from services.common.db import now_usec
from services.common.errors import ApiError
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)

DELETED = Counter("bbapi_retention_deleted_rows", "Rows the retention janitor deleted, by table", ["table"])
LAST_RUN = Gauge("bbapi_retention_last_run_timestamp_seconds", "When a janitor last finished a sweep",
                 ["janitor"])
FAILED = Counter("bbapi_retention_failed_sweeps", "Janitor sweeps that failed (retried next interval)",
                 ["janitor"])


class JanitorSettings(CommonSettings):
    janitor: bool = Field(True, description="delete expired data in the background (the retention janitor)")
    janitor_interval_seconds: float = Field(600.0, gt=0, description="time between janitor sweeps")
    janitor_batch: int = Field(500, ge=1, description="rows the janitor deletes per transaction (a log "
                                                      "chunk, up to 2 MB, counts as 64 rows)")
    janitor_pause_seconds: float = Field(0.2, ge=0, description="pause after each janitor transaction, so "
                                                                "ingestion and queries get the database")
    janitor_dry_run: bool = Field(False, description="only log what the janitor would delete")


@dataclass
class Sweep:
    """What one sweep deleted (or, dry, would delete): rows per tenant per table, and its batches."""

    dry_run: bool = False
    rows: dict[str, collections.Counter[str]] = field(default_factory=dict)
    batches: int = 0
    largest_batch: int = 0  # rows (weighted as the batch counts them) in the biggest transaction

    def add(self, tenant: str, table: str, count: int) -> None:
        if count:
            self.rows.setdefault(tenant, collections.Counter())[table] += count

    def batch(self, size: int) -> None:
        self.batches += 1
        self.largest_batch = max(self.largest_batch, size)

    def totals(self) -> collections.Counter[str]:
        return sum(self.rows.values(), collections.Counter())

    def merge(self, other: Sweep) -> Sweep:
        for tenant, tables in other.rows.items():
            for table, count in tables.items():
                self.add(tenant, table, count)
        self.batches += other.batches
        self.largest_batch = max(self.largest_batch, other.largest_batch)
        return self

    def summary(self) -> str:
        totals = self.totals()
        what = ", ".join(f"{count} {table}" for table, count in sorted(totals.items())) or "nothing"
        verb = "would delete" if self.dry_run else "deleted"
        return f"{verb} {what} of {len(self.rows)} tenant(s) in {self.batches} transaction(s)"


SweepFn = Callable[[int, bool], Awaitable[Sweep]]  # (now in microseconds, dry run) -> what it did


@dataclass
class Janitor:
    """Runs `sweep` every interval until stopped; a failed sweep is logged and retried next time."""

    name: str
    sweep: SweepFn
    settings: JanitorSettings
    clock: Callable[[], int] = now_usec
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.janitor:
            self._task = asyncio.create_task(self._loop(), name=f"{self.name}-janitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run_once(self) -> Sweep:
        done = await self.sweep(self.clock(), self.settings.janitor_dry_run)
        if not done.dry_run:
            for table, count in done.totals().items():
                DELETED.labels(table).inc(count)
        LAST_RUN.labels(self.name).set(self.clock() / 1_000_000)
        if done.rows:
            log.info("%s janitor %s", self.name, done.summary())
        return done

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except ApiError as err:  # e.g. the metadata service is unreachable: nothing was deleted
                FAILED.labels(self.name).inc()
                log.warning("%s janitor: sweep failed (%s); retrying in %.0fs", self.name, err.message,
                            self.settings.janitor_interval_seconds)
            except Exception:
                FAILED.labels(self.name).inc()
                log.exception("%s janitor: sweep failed; retrying in %.0fs", self.name,
                              self.settings.janitor_interval_seconds)
            await asyncio.sleep(self.settings.janitor_interval_seconds)
