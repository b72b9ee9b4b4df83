"""The supervisor's children: a requested restart is a stop and a start, and the grace before SIGKILL is the child's."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from services.cluster.children import Child
from services.common.errors import FailedPrecondition

# Ignores SIGTERM for a while (a gateway draining), says so in its log, then exits.
DRAINING = "trap 'echo draining; sleep {drain}; exit 0' TERM; echo started; while :; do sleep 0.05; done"


def child(tmp_path: Path, drain: float, grace: float) -> Child:
    return Child("gateway-0", ["sh", "-c", DRAINING.format(drain=drain)], tmp_path / "child.log", restart_delay=30,
                 stop_grace=grace)


async def until_logged(running: Child, text: str, count: int = 1) -> None:
    for _ in range(600):
        if running.tail(100).count(text) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not logged {count} times: {running.tail()}")


async def test_restart_waits_for_the_drain_then_starts_the_child_again(tmp_path: Path) -> None:
    running = child(tmp_path, drain=1, grace=30)
    await running.start()
    try:
        await until_logged(running, "started")
        first = running.process
        assert first is not None
        await running.restart()
        assert first.returncode == 0, "stopped by its own drain, not killed"
        assert running.pid is not None and running.pid != first.pid and running.restarts == 1
        await until_logged(running, "started", count=2)  # no crash back-off (restart_delay is 30 s)
    finally:
        await running.stop()


async def test_a_child_that_outlives_its_grace_is_killed(tmp_path: Path) -> None:
    running = child(tmp_path, drain=60, grace=0.5)
    await running.start()
    await until_logged(running, "started")
    process = running.process
    assert process is not None
    await asyncio.wait_for(running.stop(), 10)
    assert process.returncode == -signal.SIGKILL and "draining" in running.tail()
    assert running.pid is None and running.restarts == 0


async def test_restarting_a_child_that_is_not_running_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition):
        await child(tmp_path, drain=0, grace=1).restart()
