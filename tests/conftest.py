"""Shared fixtures: a live all-in-one stack per test module, clients and keys for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the stack is imported only by tests that use it (k8s tests never do)
    from services.common.auth import Capability
    from services.common.db import Sessions
    from tests.support.clients import CacheClient
    from tests.support.servers import StackServer


def running_stack(tmp_path_factory: pytest.TempPathFactory, database: str = "") -> Iterator[StackServer]:
    """The all-in-one stack on free ports (SQLite files unless a database URL is given)."""
    from services.allinone.settings import ServeSettings
    from tests.support.servers import StackServer

    data_dir: Path = tmp_path_factory.mktemp("bbapi")
    running = StackServer(ServeSettings(data_dir=data_dir, host="127.0.0.1", grpc_port=0, http_port=0,
                                        min_age_seconds=0, key_cache_seconds=0.2, database=database)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    yield from running_stack(tmp_path_factory)


@pytest.fixture(scope="module")
def make_key(server: StackServer) -> Callable[[str, Capability], str]:
    from services.common.auth import Capability
    from services.metadata import keys

    def make(tenant: str, capability: Capability = Capability.CACHE_WRITE) -> str:
        _info, key = server.call(lambda s: keys.create_key(s.metadata.sessions, tenant, capability))
        return key
    return make


@pytest.fixture(scope="module")
def client(server: StackServer) -> Iterator[CacheClient]:
    from tests.support.clients import CacheClient

    c = CacheClient(server.grpc_target, server.admin_key)
    yield c
    c.close()


POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _postgres_database(name: str) -> str:
    """A fresh database on the machine's PostgreSQL server (dropped at the end of the session)."""
    import psycopg2

    connection = psycopg2.connect(POSTGRES_ADMIN)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop_postgres_database(name: str) -> None:
    import psycopg2

    connection = psycopg2.connect(POSTGRES_ADMIN)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test runs once on SQLite and once on the real PostgreSQL server, on a fresh database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    import uuid

    name = f"bbapi_test_{uuid.uuid4().hex[:12]}"
    yield _postgres_database(name)
    _drop_postgres_database(name)


@pytest.fixture
async def maker(database_url: str) -> AsyncIterator[Sessions]:
    """Sessions on that fresh database, with the metadata and the logs tables (each service's migrations)."""
    from services.common import db
    from services.logs.db import migrate as migrate_logs
    from services.metadata.db import migrate as migrate_metadata

    await migrate_metadata(database_url)
    await migrate_logs(database_url)
    engine = db.create_engine(database_url)
    yield db.sessions(engine)
    await engine.dispose()
