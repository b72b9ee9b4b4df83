"""One server per port and per data directory.

Two servers on one port would split Bazel's connections between two databases; two on one data
directory would keep two indexes over the same blobs. A data directory is owned through an
exclusive `flock` on its lock file (the kernel drops it when the owner dies, so a crash leaves
nothing to clean up), and a public port is bound without SO_REUSEPORT unless gateways share it
on purpose. Either conflict is a `Conflict` whose message is the one line the CLI prints.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc

LOCK_FILE = "bbapi.lock"


class Conflict(Exception):
    """Another process holds what this one needs; the message says which and what to do."""


class PortInUse(Conflict):
    def __init__(self, host: str, port: int, flag: str, detail: str = "the port is in use (another bbapi running?)"
                 ) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {detail}; choose another port with {flag}")


class DataDirLocked(Conflict):
    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"data directory {path} is in use by another bbapi process (pid {pid or 'unknown'}); "
                         "stop it or choose another directory with --data-dir")


@dataclass
class DataDirLock:
    """Held while the process owns the directory; `release` (or the process's death) frees it."""

    path: Path
    _file: IO[str]

    def release(self) -> None:
        self._file.close()  # closing the descriptor drops the flock


def lock_data_dir(path: Path) -> DataDirLock:
    """Create `path` if needed and own it, or raise DataDirLocked naming the owner's pid."""
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    lock_file = (path / LOCK_FILE).open("a+")  # not truncated: the owner's pid stays readable until we own it
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.seek(0)
        owner = lock_file.read().strip()
        lock_file.close()
        raise DataDirLocked(path, owner) from None
    lock_file.truncate(0)
    lock_file.write(f"{os.getpid()}\n")
    lock_file.flush()
    return DataDirLock(path, lock_file)


def listen(host: str, port: int, flag: str, share_port: bool = False) -> socket.socket:
    """A listening TCP socket; SO_REUSEPORT only when `share_port` (gateways of one `bbapi cluster`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as err:
        sock.close()
        raise _port_error(host, port, flag, err) from None
    return sock


def _port_error(host: str, port: int, flag: str, err: OSError) -> PortInUse:
    if err.errno == errno.EADDRINUSE:
        return PortInUse(host, port, flag)
    return PortInUse(host, port, flag, err.strerror or str(err))


def bind_grpc(server: grpc.aio.Server, host: str, port: int, flag: str,
              credentials: grpc.ServerCredentials | None = None, share_port: bool = False) -> int:
    """Add `host:port` to a gRPC server (made with the same `share_port`); the bound port.

    A port that is not shared is first tried with a plain socket: grpcio's own failure is a
    multi-line log and a RuntimeError without the cause."""
    if port and not share_port:
        listen(host, port, flag).close()
    address = f"{host}:{port}"
    try:
        bound: int = (server.add_insecure_port(address) if credentials is None
                      else server.add_secure_port(address, credentials))
    except RuntimeError:  # "Failed to bind to address"
        bound = 0
    if bound == 0:
        raise PortInUse(host, port, flag, "gRPC could not bind it")
    return bound

