"""One error model: every status code crosses the internal channel as its own error class."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import grpc
import pytest

from services.blobstore.access import BatchItem, BatchResult, BlobAccess, Scope
from services.blobstore.remote.client import RemoteBlobAccess
from services.cas.server import CODECS, CasShardServicer
from services.common.errors import ApiError, error_class, error_for
from services.common.resources import Compressor, Digest
from services.common.server import start_grpc
from services.gen.bbapi.internal.v1 import cas_pb2

CODES = [code for code in grpc.StatusCode if code is not grpc.StatusCode.OK]
SCOPE = Scope("tenant")
DIGEST = Digest("a" * 64, 3)


class Failing(BlobAccess):
    """A store whose every answer is the error of one status code (the point is the channel)."""

    def __init__(self) -> None:
        self.code = grpc.StatusCode.UNKNOWN

    def _error(self) -> ApiError:
        return error_for(self.code, f"{self.code.name} from the shard")

    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        raise self._error()

    async def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
                   compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        raise self._error()
        yield b""

    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        raise self._error()

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        return [BatchResult(d, error=self._error()) for d in digests]

    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        return [BatchResult(i.digest, error=self._error()) for i in items]

    async def delete(self, scope: Scope, digest: Digest) -> bool:
        raise self._error()

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        raise self._error()

    async def put_action_result(self, scope: Scope, action: Digest, result: bytes) -> None:
        raise self._error()

    async def delete_action_result(self, scope: Scope, action: Digest) -> bool:
        raise self._error()


def test_each_code_has_its_own_class() -> None:
    classes = [error_class(code) for code in CODES]
    assert len(set(classes)) == len(CODES)
    for code, cls in zip(CODES, classes, strict=True):
        assert cls.code is code and issubclass(cls, ApiError)
        assert type(error_for(code.value[0], "m")) is cls  # the wire number maps to the same class


async def test_every_code_round_trips_the_internal_channel_as_its_class() -> None:
    store = Failing()
    server = await start_grpc("failing shard", "127.0.0.1", 0,
                              [(cas_pb2.DESCRIPTOR.services_by_name["CasShard"], CasShardServicer(store), CODECS)])
    client = RemoteBlobAccess(server.target)

    async def upload() -> AsyncIterator[bytes]:
        yield b"abc"

    try:
        for code in CODES:
            store.code = code
            expected = error_class(code)
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "find_missing": lambda: client.find_missing(SCOPE, [DIGEST]),
                "get_action_result": lambda: client.get_action_result(SCOPE, DIGEST),
                "put_action_result": lambda: client.put_action_result(SCOPE, DIGEST, b"r"),
                "write": lambda: client.write(SCOPE, DIGEST, upload()),
            }
            for name, call in calls.items():
                with pytest.raises(ApiError) as raised:
                    await call()
                assert type(raised.value) is expected, (name, code)
                assert raised.value.message == f"{code.name} from the shard"
            with pytest.raises(ApiError) as raised:
                async for _ in client.read(SCOPE, DIGEST):
                    pass
            assert type(raised.value) is expected
            (item,) = await client.batch_read(SCOPE, [DIGEST])
            assert type(item.error) is expected and item.error.message == f"{code.name} from the shard"
    finally:
        await client.close()
        await server.stop(0)
