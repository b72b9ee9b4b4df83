"""Fixtures for end-to-end tests with a real Bazel client and `bbapi serve` as a process."""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support.bazel import Workspace
from tests.support.servers import ServeProcess


@pytest.fixture(scope="session")
def bazel_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert shutil.which("bazel"), "bazel is required (apt-get install bazel-bootstrap; .ci/run installs it)"
    return tmp_path_factory.mktemp("bazel-root")


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path_factory.mktemp("serve-data")).start()
    yield process
    process.stop()


@pytest.fixture
def workspace(tmp_path: Path, bazel_root: Path) -> Iterator[Workspace]:
    ws = Workspace.create(tmp_path / "ws", bazel_root)
    yield ws
    ws.shutdown()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test shows what `bbapi serve` printed, which says why the server side failed."""
    report = yield
    serve = getattr(item, "funcargs", {}).get("serve")
    if report.failed and isinstance(serve, ServeProcess):
        report.sections.append(("bbapi serve output (last 200 lines)", "".join(serve.output[-200:])))
    return report
