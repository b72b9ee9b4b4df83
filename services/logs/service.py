"""A running logs service: migrated database, the internal gRPC server and the retention janitor."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import db
from services.common.janitor import Janitor
from services.common.retention_source import RemoteRetention
from services.common.rpc import insecure_channel
from services.common.server import RunningServer, start_grpc
from services.gen.bbapi.internal.v1 import logs_pb2
from services.logs.db import migrate
from services.logs.expiry import LogExpiry
from services.logs.server import LogsServicer
from services.logs.settings import LogsSettings
from services.logs.store import LogStore


@dataclass
class LogsService:
    engine: AsyncEngine
    store: LogStore
    server: RunningServer
    janitor: Janitor
    metadata: grpc.aio.Channel

    async def stop(self) -> None:
        await self.janitor.stop()
        await self.server.stop()
        await self.metadata.close()
        await self.engine.dispose()


async def start(settings: LogsSettings) -> LogsService:
    await migrate(settings.database)
    engine = db.create_engine(settings.database)
    maker = db.sessions(engine)
    store = LogStore(maker)
    server = await start_grpc("logs", settings.host, settings.port,
                              [(logs_pb2.DESCRIPTOR.services_by_name["Logs"], LogsServicer(store))])
    metadata = insecure_channel(settings.metadata_target)
    janitor = Janitor("logs", LogExpiry(maker, RemoteRetention(metadata), settings).sweep, settings)
    janitor.start()
    return LogsService(engine, store, server, janitor, metadata)
