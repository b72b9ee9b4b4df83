"""Driving a real Bazel (Debian's bazel-bootstrap, offline) against bbapi."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

E2E = Path(__file__).resolve().parent.parent / "e2e"
COMMON_FLAGS = ["--color=no", "--curses=no", "--noshow_progress", "--show_timestamps=false"]


@dataclass
class BazelRun:
    returncode: int
    output: str

    def processes(self) -> dict[str, int]:
        """Bazel's process summary, e.g. {'remote cache hit': 3, 'internal': 10}."""
        match = re.search(r"INFO: \d+ process(?:es)?: (.*?)\.?\n", self.output)
        if match is None:
            return {}
        counts: dict[str, int] = {}
        for part in match[1].split(", "):
            number, _, kind = part.partition(" ")
            counts[kind.rstrip(".")] = int(number)
        return counts


@dataclass
class Workspace:
    root: Path
    output_user_root: Path
    binary: str = "bazel"
    startup: list[str] = field(default_factory=list)  # startup options, e.g. --digest_function=sha1

    @classmethod
    def create(cls, path: Path, output_user_root: Path, binary: str = "bazel", source: str = "workspace") -> Workspace:
        """A copy of tests/e2e/SOURCE at `path`, with the offline stand-ins for Bazel's rule repositories."""
        shutil.copytree(E2E / source, path)
        shutil.copytree(E2E / "third_party", path / "third_party")
        return cls(path, output_user_root, binary)

    def bazel(self, command: str, *args: str, timeout: float = 300) -> BazelRun:
        cmd = [self.binary, f"--output_user_root={self.output_user_root}", *self.startup, command, *COMMON_FLAGS,
               *args]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout)
        return BazelRun(proc.returncode, proc.stdout + proc.stderr)

    def shutdown(self) -> None:
        subprocess.run([self.binary, f"--output_user_root={self.output_user_root}", *self.startup, "shutdown"],
                       cwd=self.root, capture_output=True, timeout=60)
