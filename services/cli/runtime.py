"""Process plumbing for long-running commands: logging and graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from services.common.errors import ApiError
from services.common.settings import CommonSettings


def setup_logging(settings: CommonSettings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_until_signal(start: Callable[[], Awaitable[Callable[[], Awaitable[None]]]]) -> int:
    """Run `start()` (which returns its own stop coroutine) until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = await start()
        try:
            await wait_for_signal()
        finally:
            await stop()

    try:
        asyncio.run(main())
    except ApiError as err:
        logging.getLogger("bbapi").error("%s", err.message)
        return 1
    return 0
