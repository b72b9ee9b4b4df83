"""The janitor's loop: it sweeps in the background, survives a failed sweep, and can be switched off."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from services.common.db import Sessions
from services.common.errors import Unavailable
from services.common.janitor import Janitor, JanitorSettings, Sweep, SweepFn
from tests.retention.support import expiry, invocations, now_plus, stored_build


def failures(name: str) -> float:
    return REGISTRY.get_sample_value("bbapi_retention_failed_sweeps_total", {"janitor": name}) or 0.0


async def test_the_loop_sweeps_again_after_a_failed_sweep(maker: Sessions) -> None:
    old = await stored_build(maker, "acme", 40)
    calls: list[str] = []
    swept = asyncio.Event()

    async def sweep(now_usec: int, dry_run: bool) -> Sweep:
        calls.append("sweep")
        if len(calls) == 1:
            raise Unavailable("metadata is restarting")
        done = await expiry(maker).sweep(now_usec, dry_run)
        swept.set()
        return done

    before = failures("test")
    janitor = Janitor("test", sweep, JanitorSettings(janitor_interval_seconds=0.01), clock=now_plus)
    janitor.start()
    try:
        await asyncio.wait_for(swept.wait(), 60)
    finally:
        await janitor.stop()
    assert failures("test") == before + 1
    assert old not in await invocations(maker, "acme")
    assert REGISTRY.get_sample_value("bbapi_retention_last_run_timestamp_seconds", {"janitor": "test"})


async def test_a_janitor_switched_off_never_sweeps() -> None:
    """Side by side with one switched on, which meanwhile sweeps three times."""
    swept: dict[str, int] = {"on": 0, "off": 0}
    three = asyncio.Event()

    def counting(name: str) -> SweepFn:
        async def sweep(now_usec: int, dry_run: bool) -> Sweep:
            swept[name] += 1
            if swept["on"] == 3:
                three.set()
            return Sweep(dry_run)
        return sweep

    janitors = [Janitor(name, counting(name), JanitorSettings(janitor=name == "on", janitor_interval_seconds=0.01))
                for name in swept]
    for janitor in janitors:
        janitor.start()
    try:
        await asyncio.wait_for(three.wait(), 60)
    finally:
        for janitor in janitors:
            await janitor.stop()
    assert swept["off"] == 0


async def test_a_dry_run_janitor_counts_nothing_as_deleted(maker: Sessions) -> None:
    old = await stored_build(maker, "acme", 40)
    before = REGISTRY.get_sample_value("bbapi_retention_deleted_rows_total", {"table": "invocations"}) or 0.0
    done = await Janitor("dry", expiry(maker).sweep, JanitorSettings(janitor_dry_run=True), clock=now_plus).run_once()
    assert done.rows["acme"]["invocations"] == 1 and old in await invocations(maker, "acme")
    assert (REGISTRY.get_sample_value("bbapi_retention_deleted_rows_total", {"table": "invocations"}) or 0.0) == before
