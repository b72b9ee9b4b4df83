"""Riding out a backend outage: retry internal calls with backoff for a bounded time.

A metadata or logs process that is restarting (a crash, a rollout) must not fail the build streaming
through the gateway: its calls are retried while the service is unreachable, up to the budget, and only
then fail. Only "unreachable" is retried; any answer the service gives (a refusal) stands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from services.common.errors import ApiError

T = TypeVar("T")
FIRST_DELAY, MAX_DELAY = 0.1, 1.0
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
log = logging.getLogger(__name__)


def unreachable(err: BaseException) -> bool:
    """Whether `err` says the service could not be reached (as opposed to an answer from it)."""
    if isinstance(err, grpc.aio.AioRpcError):
        return err.code() in RETRYABLE
    return isinstance(err, ApiError) and err.code in RETRYABLE


def _reason(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name} {err.details()}"
    return str(err)


@dataclass
class Outage:
    """The retry budget of one backend: `seconds` from the first failure since it last answered."""

    what: str
    seconds: float
    started: float | None = None
    delay: float = FIRST_DELAY

    def recovered(self) -> None:
        self.started, self.delay = None, FIRST_DELAY

    async def pause(self, err: BaseException) -> None:
        """Sleep before the next try, or raise `err` if it is no outage or the budget is spent."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if not unreachable(err) or now - self.started >= self.seconds:
            raise err
        log.warning("%s unreachable for %.1fs, retrying: %s", self.what, now - self.started, _reason(err))
        await asyncio.sleep(min(self.delay, self.started + self.seconds - now))
        self.delay = min(self.delay * 2, MAX_DELAY)


async def retrying(what: str, seconds: float, call: Callable[[], Awaitable[T]]) -> T:
    """`call()`'s result, retrying it while its service is unreachable for up to `seconds`."""
    outage = Outage(what, seconds)
    while True:
        try:
            return await call()
        except (grpc.aio.AioRpcError, ApiError) as err:
            await outage.pause(err)
