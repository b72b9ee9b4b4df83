"""How the supervisor sees its children: gRPC health, gateway readiness and membership status, shard metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.cluster.children import Child
from services.common.errors import Unavailable
from services.common.rpc import serving
from services.gateway.membership_status import PATH as STATUS_PATH

START_TIMEOUT = 120.0
POLL_SECONDS = 0.2


async def _wait(child: Child, ready: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not await ready():
        _check_progress(child, deadline)
        await asyncio.sleep(POLL_SECONDS)


async def wait_serving(child: Child, target: str) -> None:
    """Until the child's gRPC health check says SERVING; fails early if the child exits."""
    async with grpc.aio.insecure_channel(target) as channel:
        await _wait(child, lambda: serving(channel, 1))


async def wait_ready(child: Child, admin_url: str) -> None:
    """Until a gateway's `/readyz` on its admin port says ready (it serves the cache and takes calls)."""
    async with httpx.AsyncClient(timeout=2) as client:
        async def ready() -> bool:
            try:
                return (await client.get(admin_url + "/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await _wait(child, ready)


def _check_progress(child: Child, deadline: float) -> None:
    if not child.running() and child.restarts == 0 and child.process is not None:
        raise Unavailable(f"{child.name} exited during start-up:\n{child.tail()}")
    if time.monotonic() > deadline:
        raise Unavailable(f"{child.name} did not become ready in time:\n{child.tail()}")


async def gateway_status(admin_url: str) -> dict[str, Any] | None:
    """One gateway's `/status/membership`, from its admin port (None if it did not answer)."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(admin_url + STATUS_PATH)
            response.raise_for_status()
            status: dict[str, Any] = response.json()
            return status
    except (httpx.HTTPError, ValueError):
        return None


async def shard_stored(metrics_url: str) -> dict[str, float]:
    """A shard's stored bytes and entries, from its own Prometheus gauges (empty if unreachable)."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            text = (await client.get(metrics_url)).text
    except httpx.HTTPError:
        return {}
    wanted = {"bbapi_cas_stored_bytes": "bytes", "bbapi_cas_stored_entries": "entries"}
    return {wanted[family.name]: family.samples[0].value for family in text_string_to_metric_families(text)
            if family.name in wanted and family.samples}
