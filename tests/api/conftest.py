"""The public HTTP API of the module's stack, as `http(method, body, key=...)`, and a real build in it."""

from __future__ import annotations

import uuid

import pytest

from tests.invocations.support import FIXTURES
from tests.support.bes import Publisher, read_bep
from tests.support.servers import Http, StackServer


@pytest.fixture(scope="module")
def http(server: StackServer) -> Http:
    return server.api


@pytest.fixture(scope="module")
def invocation_id(server: StackServer) -> str:
    """A recorded real `bazel test` run, streamed in over BES with the admin key."""
    identifier = str(uuid.uuid4())
    with Publisher(server.grpc_target, server.admin_key) as publisher:
        publisher.publish(identifier, read_bep(FIXTURES / "test_ci.bep"))
    return identifier
