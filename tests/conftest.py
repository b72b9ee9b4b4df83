"""Shared fixtures: a live all-in-one stack per test module, clients and keys for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.allinone.settings import ServeSettings
from services.common.auth import Capability
from services.metadata import keys
from tests.support.clients import CacheClient
from tests.support.servers import StackServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    data_dir: Path = tmp_path_factory.mktemp("bbapi")
    running = StackServer(ServeSettings(data_dir=data_dir, host="127.0.0.1", grpc_port=0, http_port=0,
                                        min_age_seconds=0, key_cache_seconds=0.2)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def make_key(server: StackServer) -> Callable[[str, Capability], str]:
    def make(tenant: str, capability: Capability = Capability.CACHE_WRITE) -> str:
        _info, key = server.call(lambda s: keys.create_key(s.metadata.sessions, tenant, capability))
        return key
    return make


@pytest.fixture(scope="module")
def client(server: StackServer) -> Iterator[CacheClient]:
    c = CacheClient(server.grpc_target, server.admin_key)
    yield c
    c.close()
