"""A running CAS shard: the local store behind the internal gRPC contract."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from services.blobstore import stack
from services.blobstore.local.store import LocalBlobAccess
from services.cas.server import CODECS, CasShardServicer
from services.cas.settings import CasSettings
from services.common.exclusive import DataDirLock, lock_data_dir
from services.common.server import RunningServer, start_grpc
from services.gen.bbapi.internal.v1 import cas_pb2


@dataclass
class CasService:
    store: LocalBlobAccess
    server: RunningServer
    lock: DataDirLock

    async def stop(self) -> None:
        await self.server.stop()
        await self.store.close()
        self.lock.release()


async def start(settings: CasSettings) -> CasService:
    """Own the shard's directory (one process per directory), open its store, serve it."""
    lock = lock_data_dir(settings.data_dir)
    async with contextlib.AsyncExitStack() as started:
        started.callback(lock.release)
        store = await stack.open_disk(stack.DiskSettings(settings.data_dir, int(settings.max_size_bytes),
                                                         settings.low_water_fraction, settings.min_age_seconds,
                                                         int(settings.min_free_bytes)))
        started.push_async_callback(store.close)
        server = await start_grpc(f"cas {settings.shard_id}", settings.host, settings.port,
                                  [(cas_pb2.DESCRIPTOR.services_by_name["CasShard"],
                                    CasShardServicer(stack.shard(store)), CODECS)])
        started.pop_all()
    return CasService(store, server, lock)
