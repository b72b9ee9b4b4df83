"""What the all-in-one keeps in its data directory: verified blobs only, in the documented layout."""

from __future__ import annotations

import hashlib
import os

from services.allinone.stack import Stack
from services.blobstore.access import Key, Kind
from services.blobstore.local.store import SMALL_BLOB, LocalBlobAccess
from tests.support.clients import CacheClient, digest
from tests.support.servers import StackServer


def test_data_dir_layout_holds_only_verified_blobs(server: StackServer, client: CacheClient) -> None:
    large, small = os.urandom(SMALL_BLOB + 1), os.urandom(20_000)
    client.upload(large)
    client.upload(small)
    cas_dir = server.settings.data_dir / "cas"
    blobs = [p for p in (cas_dir / "v1").rglob("*") if p.is_file() and p.parent.parent.name == "cas"]
    assert cas_dir / "v1" / "default" / "_" / "cas" / digest(large).hash[:2] / \
        f"{digest(large).hash}-{len(large)}" in blobs
    for blob in blobs:
        name, size = blob.name.split("-")
        contents = blob.read_bytes()
        assert (hashlib.sha256(contents).hexdigest(), len(contents)) == (name, int(size)), blob
        assert blob.parent.name == name[:2], blob
    assert list((cas_dir / "tmp").iterdir()) == []
    # small blobs are packed: every packed blob's bytes match the digest its name carries
    store = server.call(_local_store)
    names = [f"{k.scope.tenant}/_/cas/{k.digest.hash[:2]}/{k.digest.hash}-{k.digest.size}"
             for k in server.call(lambda s: _keys(store)) if k.kind is Kind.CAS and not k.scope.instance_name]
    seqs = {name: seq for name, _size, _used, seq in store.packed.scan(0)}
    packed = dict(zip(names, store.packed.get([seqs.get(name, 0) for name in names]), strict=True))
    assert packed[f"default/_/cas/{digest(small).hash[:2]}/{digest(small).hash}-{len(small)}"] == small
    for name, stored in packed.items():
        if stored is not None:
            assert f"{hashlib.sha256(stored).hexdigest()}-{len(stored)}" == name.rpartition("/")[2]


async def _local_store(stack: Stack) -> LocalBlobAccess:
    store = stack.gateway.backends.blobs.cluster.pool["local"]
    assert isinstance(store, LocalBlobAccess)
    return store


async def _keys(store: LocalBlobAccess) -> list[Key]:
    return [key async for key in store.list_keys()]
