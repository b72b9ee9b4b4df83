"""A running logs service: migrated database and the internal gRPC server."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import db
from services.common.server import RunningServer, start_grpc
from services.gen.bbapi.internal.v1 import logs_pb2
from services.logs.db import migrate
from services.logs.server import LogsServicer
from services.logs.settings import LogsSettings
from services.logs.store import LogStore


@dataclass
class LogsService:
    engine: AsyncEngine
    store: LogStore
    server: RunningServer

    async def stop(self) -> None:
        await self.server.stop()
        await self.engine.dispose()


async def start(settings: LogsSettings) -> LogsService:
    await migrate(settings.database)
    engine = db.create_engine(settings.database)
    store = LogStore(db.sessions(engine))
    server = await start_grpc("logs", settings.host, settings.port,
                              [(logs_pb2.DESCRIPTOR.services_by_name["Logs"], LogsServicer(store))])
    return LogsService(engine, store, server)
