"""Schemathesis, every check, against a live `bbapi serve`: a client generated from /openapi.json
gets what the server really does (schemathesis.toml lists the intended exceptions, with reasons)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path_factory.mktemp("serve-data")).start()
    yield process
    process.stop()


def test_openapi_document_holds_for_every_operation(serve: ServeProcess, tmp_path: Path) -> None:
    assert serve.admin_key
    run = subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(ROOT / "tests/api/schemathesis.toml"), "run",
         f"http://127.0.0.1:{serve.http_port}/openapi.json", "--checks", "all", "--max-examples", "100",
         "--header", f"x-buildbuddy-api-key: {serve.admin_key}", "--no-color", "--seed", "13",
         "--report", "junit", "--report-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr
    document = httpx.get(f"http://127.0.0.1:{serve.http_port}/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert f"Tested: {operations}" in run.stdout, run.stdout[-5_000:]  # every operation, none skipped
