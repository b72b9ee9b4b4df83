"""A running metadata service: migrated database, bootstrap key, internal gRPC server, retention janitor."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import db
from services.common.auth import Capability
from services.common.janitor import Janitor
from services.common.server import RunningServer, start_grpc
from services.gen.bbapi.internal.v1 import metadata_pb2, retention_pb2
from services.metadata import keys
from services.metadata.db import migrate
from services.metadata.retention.expiry import MetadataExpiry
from services.metadata.retention.server import RetentionServicer
from services.metadata.server import MetadataServicer
from services.metadata.settings import MetadataSettings

log = logging.getLogger(__name__)


@dataclass
class MetadataService:
    engine: AsyncEngine
    sessions: db.Sessions
    server: RunningServer
    janitor: Janitor

    async def stop(self) -> None:
        await self.janitor.stop()
        await self.server.stop()
        await self.engine.dispose()


async def start(settings: MetadataSettings) -> MetadataService:
    await migrate(settings.database)
    engine = db.create_engine(settings.database)
    maker = db.sessions(engine)
    if settings.bootstrap_api_key is not None:
        created = await keys.ensure_key(maker, settings.bootstrap_api_key.get_secret_value(), "default",
                                        Capability.ADMIN)
        log.info("bootstrap API key %s", "created" if created else "already present")
    expiry = MetadataExpiry(maker, settings, settings)
    server = await start_grpc("metadata", settings.host, settings.port,
                              [(metadata_pb2.DESCRIPTOR.services_by_name["Metadata"], MetadataServicer(maker)),
                               (retention_pb2.DESCRIPTOR.services_by_name["Retention"], RetentionServicer(expiry))])
    janitor = Janitor("metadata", expiry.sweep, settings)
    janitor.start()
    return MetadataService(engine, maker, server, janitor)
