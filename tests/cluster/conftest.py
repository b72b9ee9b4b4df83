"""Fixtures for cluster tests: an in-process sharded stack, a Bazel workspace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.inprocess import Stack
from tests.e2e.conftest import bazel_root, workspace  # noqa: F401 - the same Bazel fixtures as the e2e tests


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    running = Stack(tmp_path)
    yield running
    await running.close()
