"""The local store keys and verifies by the scope's digest function, on the layout SHA-256 always had."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.blobstore import stack as blobstore
from services.blobstore.access import BatchItem, Kind, Scope, read_all
from services.blobstore.local.store import SMALL_BLOB
from services.blobstore.local.verify import digest_of
from services.common.errors import InvalidArgument
from services.common.hashing import EMPTY_HASH, DigestFunction
from services.common.resources import Digest
from tests.cas.test_local import chunks, make

SHA256 = Scope("tenant-a")
BLAKE3 = Scope("tenant-a", "", DigestFunction.BLAKE3)


@pytest.mark.parametrize("size", [1000, SMALL_BLOB + 1])  # packed, and a file of its own
async def test_the_same_bytes_under_two_functions_are_two_entries_and_survive_a_restart(tmp_path: Path,
                                                                                       size: int) -> None:
    store = await make(tmp_path)
    data = os.urandom(size)
    sha, b3 = digest_of(data), digest_of(data, DigestFunction.BLAKE3)
    assert await store.write(BLAKE3, b3, chunks(data)) is False
    assert await store.find_missing(SHA256, [sha]) == [sha]
    assert await store.find_missing(SHA256, [Digest(b3.hash, size)]) == [Digest(b3.hash, size)]
    assert await store.write(SHA256, sha, chunks(data)) is False  # not "already present"
    assert await store.delete(BLAKE3, b3)
    assert await store.find_missing(BLAKE3, [b3]) == [b3]
    assert await read_all(store, SHA256, sha) == data
    await store.write(BLAKE3, b3, chunks(data))
    await store.put_action_result(BLAKE3, b3, b"blake3 result")
    await store.close()
    stray = tmp_path / "v1/tenant-a/_/cas/ab" / f"{'ab' * 25}-5"  # no function's hash length: not a blob
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"stray")

    reopened = await make(tmp_path)
    assert {(k.scope, k.kind, k.digest) async for k in reopened.list_keys()} == {
        (SHA256, Kind.CAS, sha), (BLAKE3, Kind.CAS, b3), (BLAKE3, Kind.AC, b3)}
    assert await read_all(reopened, BLAKE3, b3) == data
    assert await reopened.get_action_result(BLAKE3, b3) == b"blake3 result"
    if size > SMALL_BLOB:  # SHA-256 keeps the directory it always had: data from before upgrades is found
        assert (tmp_path / "v1/tenant-a/_/cas" / sha.hash[:2] / f"{sha.hash}-{size}").is_file()
        assert (tmp_path / "v1/tenant-a/_/cas-blake3" / b3.hash[:2] / f"{b3.hash}-{size}").is_file()


@pytest.mark.parametrize("size", [1000, SMALL_BLOB + 1])
async def test_verification_uses_the_scope_function(tmp_path: Path, size: int) -> None:
    store = await make(tmp_path)
    data = os.urandom(size)
    for scope, digest in ((BLAKE3, digest_of(data)), (SHA256, digest_of(data, DigestFunction.BLAKE3))):
        with pytest.raises(InvalidArgument, match="hash mismatch"):
            await store.write(scope, digest, chunks(data))
        (result,) = await store.batch_write(scope, [BatchItem(digest, data)])
        assert isinstance(result.error, InvalidArgument)
    for function in (DigestFunction.SHA1, DigestFunction.SHA384, DigestFunction.SHA512):
        scope = Scope("tenant-a", "", function)
        await store.write(scope, digest_of(data, function), chunks(data))
        assert await read_all(store, scope, digest_of(data, function)) == data
    assert [k.scope.function async for k in store.list_keys()] == [DigestFunction.SHA1, DigestFunction.SHA384,
                                                                    DigestFunction.SHA512]


async def test_each_function_has_its_own_empty_blob(tmp_path: Path) -> None:
    store = blobstore.shard(await make(tmp_path))
    empty = Digest(EMPTY_HASH[DigestFunction.BLAKE3], 0)
    assert await store.find_missing(BLAKE3, [empty]) == []
    assert await read_all(store, BLAKE3, empty) == b""
    assert await store.find_missing(SHA256, [empty]) == [empty]  # under SHA-256 that hash names real bytes
