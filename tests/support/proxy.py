"""A TCP proxy that can cut every connection passing through it (a broken network, on demand)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field


@dataclass
class BreakingProxy:
    target_host: str
    target_port: int
    port: int = 0
    forwarded: int = 0  # bytes from client to server
    breaks: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _break_after: int | None = None

    def start(self) -> BreakingProxy:
        ready = threading.Event()

        async def serve() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await server.serve_forever()

        threading.Thread(target=self._loop.run_until_complete, args=(serve(),), daemon=True).start()
        ready.wait(10)
        return self

    def break_after(self, client_bytes: int) -> None:
        """Cut every connection once `client_bytes` more bytes went from client to server."""
        self._break_after = self.forwarded + client_bytes

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(self._pipe(reader, upstream_writer, count=True),
                             self._pipe(upstream_reader, writer, count=False), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if count:
                    self.forwarded += len(data)
                    if self._break_after is not None and self.forwarded >= self._break_after:
                        self._break_after = None
                        self._cut()
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _cut(self) -> None:
        self.breaks += 1
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()
