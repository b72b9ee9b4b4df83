"""The whole stack in one process: metadata, a CAS shard and the gateway.

The gateway still reaches the other services over their internal gRPC contracts (on loopback
ports), exactly as in a cluster; only the process boundary is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.allinone.settings import ServeSettings
from services.cas import service as cas
from services.cas.settings import CasSettings
from services.common.auth import Capability
from services.common.rpc import insecure_channel, serving
from services.gateway import service as gateway
from services.gateway.remote import RemoteBlobAccess
from services.gateway.settings import GatewaySettings
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
    cas: cas.CasService
    gateway: gateway.GatewayService
    admin_key: str | None  # set only when this start created the first key

    @property
    def grpc_port(self) -> int:
        return self.gateway.grpc_port

    @property
    def http_port(self) -> int:
        return self.gateway.http_port

    async def stop(self) -> None:
        await self.gateway.stop()
        await self.cas.stop()
        await self.logs.stop()
        await self.metadata.stop()


async def start(settings: ServeSettings) -> Stack:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    common = settings.model_dump(include={"log_level", "tracing_exporter", "otlp_endpoint"})
    meta = await metadata.start(MetadataSettings(
        **common, host=LOOPBACK, port=0, database=settings.database_url("metadata"), metrics_port=0,
        bootstrap_api_key=settings.bootstrap_api_key))
    log_service = await logs.start(LogsSettings(**common, host=LOOPBACK, port=0, database=settings.database_url("logs"),
                                                metrics_port=0))
    admin_key = None
    if not await keys.any_keys(meta.sessions):
        _info, admin_key = await keys.create_key(meta.sessions, "default", Capability.ADMIN, label="first admin key")
    shard = await cas.start(CasSettings(
        **common, host=LOOPBACK, port=0, data_dir=settings.data_dir / "cas", max_size_bytes=settings.max_size_bytes,
        min_age_seconds=settings.min_age_seconds, metrics_port=0))
    cas_channel = insecure_channel(shard.server.target)
    backends = gateway.Backends(blobs=RemoteBlobAccess(shard.server.target, cas_channel),
                                metadata=insecure_channel(meta.server.target),
                                logs=insecure_channel(log_service.server.target),
                                cas_ready=lambda: serving(cas_channel, 2))
    edge = await gateway.start(GatewaySettings(
        **common, host=settings.host, grpc_port=settings.grpc_port, http_port=settings.http_port,
        key_cache_seconds=settings.key_cache_seconds, **settings.bes_settings()),
        backends)
    return Stack(meta, log_service, shard, edge, admin_key)
