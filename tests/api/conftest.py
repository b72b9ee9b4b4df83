"""The public HTTP API of the module's stack, as `http(method, body, key=...)`."""

from __future__ import annotations

import pytest

from tests.support.servers import Http, StackServer


@pytest.fixture(scope="module")
def http(server: StackServer) -> Http:
    return server.api
