"""One supervised child process: started, restarted when it exits, stopped on request.

Children run in their own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops them in order; the kernel sends them SIGTERM should the supervisor itself die
(PR_SET_PDEATHSIG), so no process outlives it holding a port. Output goes to one log file per
child under `<data-dir>/logs/`.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.common.errors import FailedPrecondition

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
MAX_RESTART_DELAY = 30.0
STEADY_SECONDS = 60.0  # a child that ran this long has its restart delay reset
STOP_GRACE = 10.0  # how long a child may take to stop before SIGKILL, unless it asks for more (a gateway's drain)


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child before exec
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def bbapi(*args: str) -> list[str]:
    """The command line of a `bbapi` subcommand, run by this interpreter."""
    return [sys.executable, "-m", "services.cli.main", *args]


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    restart_delay: float = 1.0
    address: str = ""  # what the child serves, for status output
    stop_grace: float = STOP_GRACE
    restarts: int = 0
    process: asyncio.subprocess.Process | None = None
    _stopping: bool = False
    _restart_asked: bool = False
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _respawned: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    def running(self) -> bool:
        return self.pid is not None

    async def start(self) -> None:
        """Spawn the process and keep it running until `stop()`."""
        await self._spawn()
        self._task = asyncio.create_task(self._supervise())

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        output = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            os.close(output)
        self._respawned.set()

    async def _supervise(self) -> None:
        delay = self.restart_delay
        while True:
            assert self.process is not None
            started = time.monotonic()
            code = await self.process.wait()
            if self._stopping:
                return
            if self._restart_asked:  # a requested restart is no crash: start again at once
                self._restart_asked = False
                log.info("%s stopped with status %s; starting it again", self.name, code)
            else:
                if time.monotonic() - started > STEADY_SECONDS:
                    delay = self.restart_delay
                log.warning("%s exited with status %s; restarting in %.1fs (log: %s)", self.name, code, delay,
                            self.log_path)
                await asyncio.sleep(delay)
                if self._stopping:
                    return
                delay = min(max(delay * 2, 0.5), MAX_RESTART_DELAY)
            self.restarts += 1
            await self._spawn()

    async def restart(self) -> None:
        """Stop the process as Kubernetes stops a pod (SIGTERM, SIGKILL after `stop_grace`), then
        start it again; returns once the new process is spawned."""
        process = self.process
        if process is None or process.returncode is not None or self._task is None or self._restart_asked:
            raise FailedPrecondition(f"{self.name} is not running (it is being restarted already)")
        self._restart_asked = True
        self._respawned.clear()
        await self._terminate(process)
        await self._respawned.wait()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_grace` seconds; not started again."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        process = self.process
        if process is not None and process.returncode is None:
            await self._terminate(process)
        self._respawned.set()  # a restart waiting for the new process stops waiting

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self.stop_grace)
        except TimeoutError:
            log.warning("%s did not stop within %.0fs; killing it", self.name, self.stop_grace)
            process.kill()
            await process.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
