"""The whole stack in one process: metadata, a CAS shard and the gateway.

The blob store is in process (services.blobstore.stack.all_in_one: a cluster of one member, the
local disk store), so blob bytes never cross a loopback socket. Metadata and logs are still
reached over their internal gRPC contracts on loopback ports, as in a cluster.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from services.allinone.settings import ServeSettings
from services.blobstore import stack as blobstore
from services.common.auth import Capability
from services.common.exclusive import DataDirLock, lock_data_dir
from services.common.janitor import JanitorSettings
from services.common.retention import RetentionSettings
from services.common.rpc import insecure_channel
from services.gateway import service as gateway
from services.gateway.settings import EdgeSettings, GatewaySettings
from services.logs import service as logs
from services.logs.settings import LogsSettings
from services.metadata import keys
from services.metadata import service as metadata
from services.metadata.settings import MetadataSettings

LOOPBACK = "127.0.0.1"


@dataclass
class Stack:
    metadata: metadata.MetadataService
    logs: logs.LogsService
    gateway: gateway.GatewayService
    admin_key: str | None  # set only when this start created the first key
    lock: DataDirLock

    @property
    def grpc_port(self) -> int:
        return self.gateway.grpc_port

    @property
    def http_port(self) -> int:
        return self.gateway.http_port

    async def stop(self) -> None:
        await self.gateway.stop()
        await self.logs.stop()
        await self.metadata.stop()
        self.lock.release()


async def start(settings: ServeSettings) -> Stack:
    """Own the data directory, then start every part; a part that fails stops those already started."""
    lock = lock_data_dir(settings.data_dir)
    async with contextlib.AsyncExitStack() as started:
        started.callback(lock.release)
        shared = set(JanitorSettings.model_fields)  # the settings of every process, and the janitor's
        meta = await metadata.start(MetadataSettings(
            **settings.model_dump(include=shared | set(RetentionSettings.model_fields)), host=LOOPBACK, port=0,
            database=settings.database_url("metadata"), metrics_port=0, bootstrap_api_key=settings.bootstrap_api_key))
        started.push_async_callback(meta.stop)
        log_service = await logs.start(LogsSettings(**settings.model_dump(include=shared), host=LOOPBACK, port=0,
                                                    database=settings.database_url("logs"), metrics_port=0,
                                                    metadata_target=meta.server.target))
        started.push_async_callback(log_service.stop)
        admin_key = None
        if not await keys.any_keys(meta.sessions):
            _info, admin_key = await keys.create_key(meta.sessions, "default", Capability.ADMIN,
                                                     label="first admin key")
        blobs = await blobstore.all_in_one(blobstore.DiskSettings(
            settings.data_dir / "cas", int(settings.max_size_bytes), min_age_seconds=settings.min_age_seconds,
            min_free_bytes=int(settings.min_free_bytes)))
        backends = gateway.Backends(blobs=blobs, metadata=insecure_channel(meta.server.target),
                                    logs=insecure_channel(log_service.server.target))
        started.push_async_callback(backends.close)
        edge = await gateway.start(GatewaySettings(**settings.model_dump(include=set(EdgeSettings.model_fields))),
                                   backends)
        started.pop_all()
    return Stack(meta, log_service, edge, admin_key, lock)
