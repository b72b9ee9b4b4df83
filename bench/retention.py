"""The retention janitor next to ingestion: how fast it deletes, and what it costs a build streaming meanwhile.

    python bench/retention.py [--builds 200] [--batch 500] [--database postgresql://...]

Stores --builds copies of a recorded real build (tests/invocations/fixtures/test_ci.bep, with a
~100 KB log each) and makes them 40 days idle; then streams a fresh build, 50 events per append (one
transaction each, as the BES does), once alone and once while a sweep deletes the old ones. Prints
the sweep's rows/s and transactions, and the append latency p50/p99/max of both runs: what the
janitor's bounded transactions cost ingestion.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.common import db
from services.common.janitor import JanitorSettings
from services.common.retention import RetentionSettings
from services.logs.db import migrate as migrate_logs
from services.logs.expiry import LogExpiry
from services.logs.store import LogStore
from services.metadata.db import migrate as migrate_metadata
from services.metadata.invocations.ingest import InvocationStore
from services.metadata.retention.expiry import MetadataExpiry
from tests.invocations.support import Events, ingest, recorded
from tests.retention.support import idle, now_plus

LOG = ("compiling //pkg:target ✓ " * 40 + "\n").encode() * 100  # ~100 KB


async def store_old(maker: db.Sessions, events: Events, builds: int) -> None:
    for _ in range(builds):
        invocation_id = str(uuid.uuid4())
        await ingest(InvocationStore(maker), "bench", events, invocation_id, batch=200)
        writer = await LogStore(maker).open("bench", invocation_id)
        await writer.append([(1, LOG)])
        await writer.finish()
        await idle(maker, "bench", invocation_id, 40)


async def stream(maker: db.Sessions, events: Events, appends: int, until: asyncio.Event | None = None) -> list[float]:
    """A fresh build, 50 events per append (the recording over and over, renumbered), for `appends`
    appends or, with `until`, until it is set; the latency of each append."""
    writer = await InvocationStore(maker).open("live", str(uuid.uuid4()), "AKbench", [])
    payloads = [payload for _, payload in events[1:]]  # one BuildStarted, then the rest again and again
    latencies, sequence = [], 1
    await writer.append(events[:1])
    while (until is None and len(latencies) < appends) or (until is not None and not until.is_set()):
        batch = [(sequence + 1 + i, payloads[(sequence - 1 + i) % len(payloads)]) for i in range(50)]
        began = time.perf_counter()
        await writer.append(batch)
        latencies.append(time.perf_counter() - began)
        sequence += 50
    return latencies


def describe(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms ({len(ordered)} appends)")


async def main(args: argparse.Namespace) -> None:
    url = args.database or db.sqlite_url(Path(tempfile.mkdtemp(prefix="bbapi-retention-")) / "bench.db")
    await migrate_metadata(url)
    await migrate_logs(url)
    engine = db.create_engine(url)
    maker = db.sessions(engine)
    events = recorded("test_ci")
    try:
        await store_old(maker, events, args.builds)
        alone = await stream(maker, events, appends=100)
        janitor = JanitorSettings(janitor_batch=args.batch, janitor_pause_seconds=args.pause)
        metadata = MetadataExpiry(maker, RetentionSettings(), janitor)

        finished = asyncio.Event()

        async def sweep() -> tuple[float, int, int]:
            began = time.perf_counter()
            done = await metadata.sweep(now_plus())
            done.merge(await LogExpiry(maker, metadata, janitor).sweep(now_plus()))
            finished.set()
            return time.perf_counter() - began, sum(done.totals().values()), done.batches

        (seconds, rows, batches), beside = await asyncio.gather(sweep(), stream(maker, events, 0, finished))
        print(f"database: {url.split(':')[0]}; {args.builds} expired builds, batch {args.batch}, "
              f"pause {args.pause * 1000:.0f} ms")
        print(f"sweep: {rows} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s), {batches} transactions")
        print(f"appends alone:        {describe(alone)}")
        print(f"appends during sweep: {describe(beside)}")
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds after each janitor transaction")
    parser.add_argument("--database", default="", help="postgresql://... (default: a SQLite file)")
    asyncio.run(main(parser.parse_args()))
