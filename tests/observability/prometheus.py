"""A real Prometheus server for tests: scrapes given targets every second, loads rule files, and
answers its HTTP query API on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
MISSING = "needs Debian's prometheus package (apt-get install -y prometheus; .ci/run installs it)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Prometheus:
    workdir: Path
    targets: list[str]
    rule_files: list[Path] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Self:
        assert PROMETHEUS is not None, MISSING
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(path) for path in self.rule_files],
                  "scrape_configs": [{"job_name": "bbapi", "static_configs": [{"targets": self.targets}]}]}
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=(self.workdir / "prometheus.log").open("wb"))
        self.wait_for(lambda: httpx.get(f"{self.url}/-/ready").status_code == 200, timeout, "ready")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        """Poll until `condition()` holds (readiness and scrapes are asynchronous)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, (self.workdir / "prometheus.log").read_text()
            try:
                if condition():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus: not {what} after {timeout}s")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; a query Prometheus cannot run raises with its error."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}).json()
        assert response["status"] == "success", (expr, response)
        result: list[dict[str, Any]] = response["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/rules").json()
        assert response["status"] == "success", response
        return [rule for group in response["data"]["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
