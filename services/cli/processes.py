"""One service per process, as in a cluster: `bbapi cas|metadata|gateway|migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable

import prometheus_client
from pydantic import Field

from services.blobstore import stack
from services.cas import service as cas
from services.cas.settings import CasSettings
from services.cli.runtime import run_until_signal, setup_process
from services.common.rpc import insecure_channel
from services.common.settings import CommonSettings, add_arguments, from_args
from services.gateway import service as gateway
from services.gateway.membership_status import membership_router
from services.gateway.settings import GatewaySettings
from services.logs import db as logs_db
from services.logs import service as logs
from services.logs.settings import LogsSettings
from services.metadata import db as metadata_db
from services.metadata import service as metadata
from services.metadata.settings import MetadataSettings

Stop = Callable[[], Awaitable[None]]


class MigrateSettings(CommonSettings):
    database: str = Field(..., description="database URL to migrate: sqlite:///FILE or postgresql://...")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    services: list[tuple[str, str, type[CommonSettings], Callable[..., Awaitable[Stop]]]] = [
        ("cas", "run one CAS shard (internal gRPC)", CasSettings, _cas),
        ("metadata", "run the metadata service (internal gRPC)", MetadataSettings, _metadata),
        ("logs", "run the logs service (internal gRPC)", LogsSettings, _logs),
        ("gateway", "run the public gateway (gRPC and HTTP)", GatewaySettings, _gateway),
    ]
    for name, helptext, settings, start in services:
        parser = commands.add_parser(name, help=helptext)
        add_arguments(parser, settings)
        parser.set_defaults(run=_runner(name, settings, start))
    parser = commands.add_parser("migrate", help="create or upgrade the database tables, then exit")
    add_arguments(parser, MigrateSettings)
    parser.set_defaults(run=_migrate)


def _runner(name: str, model: type[CommonSettings],
            start: Callable[..., Awaitable[Stop]]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = from_args(model, args)
        setup_process(settings, name)
        metrics_port = getattr(settings, "metrics_port", 0)
        if metrics_port:
            prometheus_client.start_http_server(metrics_port)
        return run_until_signal(lambda: start(settings))
    return run


async def _cas(settings: CasSettings) -> Stop:
    return (await cas.start(settings)).stop


async def _metadata(settings: MetadataSettings) -> Stop:
    return (await metadata.start(settings)).stop


async def _logs(settings: LogsSettings) -> Stop:
    return (await logs.start(settings)).stop


async def _gateway(settings: GatewaySettings) -> Stop:
    blobs = await stack.cluster_gateway(settings.membership_file)
    backends = gateway.Backends(blobs, insecure_channel(settings.metadata_target),
                                insecure_channel(settings.logs_target),
                                routers=[membership_router(blobs.cluster.status)])
    return (await gateway.start(settings, backends)).stop


def _migrate(args: argparse.Namespace) -> int:
    settings = from_args(MigrateSettings, args)
    logging.basicConfig(level=settings.log_level.upper())
    asyncio.run(metadata_db.migrate(settings.database))
    asyncio.run(logs_db.migrate(settings.database))
    print("database is up to date")
    return 0
