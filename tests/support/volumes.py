"""Small real filesystems for disk-full tests: a tmpfs of a few MiB mounted for one test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from services.blobstore.local.volume import free_bytes


@contextmanager
def small_volume(path: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of `size` at `path` (skips the test where mounting is not allowed, e.g. without root)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs to fill (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(volume: Path, leave: int) -> Path:
    """A file that leaves about `leave` bytes free on the volume (what another writer would do)."""
    filler = volume / "filler"
    with open(filler, "ab") as out:
        while (room := free_bytes(volume) - leave) > 0:
            out.write(b"\0" * min(room, 1 << 20))
            out.flush()
            os.fsync(out.fileno())
    return filler
