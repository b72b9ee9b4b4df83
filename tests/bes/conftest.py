"""Build-event tests run on the embedded SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import _drop_postgres_database, _postgres_database, running_stack
from tests.support.servers import StackServer


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    if request.param == "sqlite":
        yield from running_stack(tmp_path_factory)
        return
    name = f"bbapi_bes_{uuid.uuid4().hex[:10]}"
    yield from running_stack(tmp_path_factory, _postgres_database(name))
    _drop_postgres_database(name)
