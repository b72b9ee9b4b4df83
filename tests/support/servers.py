"""Running bbapi for tests: in a thread of this process, or as a real `bbapi` subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import httpx

from services.allinone import stack
from services.allinone.settings import ServeSettings

T = TypeVar("T")
Http = Callable[..., httpx.Response]  # StackServer.api, or the `http` fixture of tests/api
BBAPI = [sys.executable, "-m", "services.cli.main"]  # the `bbapi` command, from this checkout


def bbapi(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `bbapi ARGS` as a user would, with `env` added to this environment."""
    return subprocess.run([*BBAPI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=timeout)


class LoopThread:
    """An event loop in a background thread, as a server process would have."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-server-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class StackServer:
    """The all-in-one stack in this process; `admin_key` is tenant 'default''s first key."""

    settings: ServeSettings
    loop: LoopThread = field(default_factory=LoopThread)
    running: stack.Stack | None = None

    def start(self) -> StackServer:
        self.running = self.loop.run(stack.start(self.settings))
        return self

    def stop(self) -> None:
        if self.running is not None:
            self.loop.run(self.running.stop())
            self.running = None
        self.loop.close()

    def call(self, make: Callable[[stack.Stack], Awaitable[T]]) -> T:
        """Run a coroutine against the live stack, on its loop."""
        assert self.running is not None
        return self.loop.run(_await(make(self.running)))

    @property
    def grpc_target(self) -> str:
        assert self.running is not None
        return f"127.0.0.1:{self.running.grpc_port}"

    @property
    def http_url(self) -> str:
        assert self.running is not None
        return f"http://127.0.0.1:{self.running.http_port}"

    @property
    def admin_key(self) -> str:
        assert self.running is not None and self.running.admin_key is not None
        return self.running.admin_key

    def api(self, method: str, body: object = None, key: str | None = None, content: bytes | None = None,
            headers: dict[str, str] | None = None, prefix: str = "/api/v1") -> httpx.Response:
        """POST /api/v1/METHOD (or PREFIX/METHOD): `body` as JSON (or raw `content`), with `key` (the admin key
        by default)."""
        sent = {"x-buildbuddy-api-key": key or self.admin_key, **(headers or {})}
        return httpx.post(f"{self.http_url}{prefix}/{method}", json=body if content is None else None,
                          content=content, headers=sent, timeout=30)


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


@dataclass
class ServeProcess:
    """`bbapi serve` as a child process, the way a user runs it."""

    data_dir: Path
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    grpc_port: int = 0
    http_port: int = 0
    admin_key: str | None = None

    command: ClassVar[str] = "serve"

    def start(self, timeout: float = 240) -> Self:  # a cluster of 7 processes takes over 60 s on a busy 2-core machine
        cmd = [*BBAPI, self.command, "--data-dir", str(self.data_dir),
               "--grpc-port", "0", "--http-port", "0", "--host", "127.0.0.1", *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **self.env})
        try:
            self._read_banner(time.monotonic() + timeout)
        except BaseException:
            self.proc.kill()  # a start that failed must not leave a server (and a cluster's children) running
            self.proc.wait()
            raise
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _read_banner(self, deadline: float) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"bbapi {self.command} exited:\n" + "".join(self.output))
            self.output.append(line)
            if match := re.search(r"gRPC\s+grpcs?://[^:]+:(\d+)", line):
                self.grpc_port = int(match[1])
            if match := re.search(r"HTTP\s+https?://[^:]+:(\d+)", line):
                self.http_port = int(match[1])
            if "Admin API key" in line:
                self.admin_key = self.proc.stdout.readline().strip()
                self.output.append(self.admin_key + "\n")
            if line.startswith("Press Ctrl-C"):
                return
        raise TimeoutError(f"bbapi {self.command} did not start:\n" + "".join(self.output))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def peak_rss_mib(self) -> float:
        """The process's peak resident memory so far (VmHWM)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def new_key(self, tenant: str, capability: str = "cache-write") -> str:
        """A new API key of `tenant`, made with `bbapi keys create` on this server's data dir and
        database (the environment given to the server, BBAPI_DATABASE included)."""
        created = bbapi("keys", "create", "--tenant", tenant, "--capability", capability,
                        "--data-dir", str(self.data_dir), env=self.env)
        assert created.returncode == 0, created.stderr
        return created.stdout.strip().splitlines()[-1]

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"
