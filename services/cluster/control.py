"""The running supervisor's control socket: `bbapi cluster status|scale` talk to it.

A Unix socket at `<data-dir>/supervisor.sock` (only local users with access to the directory
can reach it). A request is one JSON line; the answer is zero or more `{"progress": ...}` lines
and then one `{"result": ...}` or `{"error": "..."}` line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from services.common.errors import ApiError, FailedPrecondition, Unavailable

log = logging.getLogger(__name__)

SOCKET_NAME = "supervisor.sock"
MAX_LINE = 1024 * 1024

Report = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[dict[str, Any], Report], Awaitable[dict[str, Any]]]


def socket_path(data_dir: Path) -> Path:
    return data_dir.resolve() / SOCKET_NAME


async def serve(data_dir: Path, handle: Handler) -> asyncio.Server:
    path = socket_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        try:
            await request(data_dir, {"command": "ping"})
        except Unavailable:
            path.unlink()  # left behind by a supervisor that was killed
        else:
            raise FailedPrecondition(f"a cluster supervisor is already running in {data_dir}")

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send(message: dict[str, Any]) -> None:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()

        try:
            message = json.loads(await reader.readline())
            result = await handle(message, lambda progress: send({"progress": progress}))
            await send({"result": result})
        except ApiError as err:
            await send({"error": err.message})
        except (ValueError, ConnectionError) as err:
            log.warning("control request failed: %s", err)
        finally:
            writer.close()

    return await asyncio.start_unix_server(connection, path, limit=MAX_LINE)


async def request(data_dir: Path, message: dict[str, Any], report: Report | None = None) -> dict[str, Any]:
    """Send one request and wait for its result, passing progress lines to `report`."""
    try:
        reader, writer = await asyncio.open_unix_connection(socket_path(data_dir), limit=MAX_LINE)
    except (FileNotFoundError, ConnectionRefusedError):
        raise Unavailable(f"no cluster supervisor is running in {data_dir} (start one with `bbapi cluster`)") from None
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        while line := await reader.readline():
            answer = json.loads(line)
            if "progress" in answer:
                if report is not None:
                    await report(answer["progress"])
            elif "error" in answer:
                raise FailedPrecondition(answer["error"])
            else:
                result: dict[str, Any] = answer["result"]
                return result
        raise Unavailable("the cluster supervisor closed the connection without an answer")
    finally:
        writer.close()
