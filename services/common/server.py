"""Starting an internal service's grpc.aio server, with the standard health service."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common.exclusive import bind_grpc
from services.common.rpc import Codec, new_server, serve_servicer

log = logging.getLogger(__name__)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


Registration = tuple[ServiceDescriptor, object] | tuple[ServiceDescriptor, object, Mapping[str, Codec]]


async def start_grpc(name: str, host: str, port: int, services: Sequence[Registration]) -> RunningServer:
    server = new_server()
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for service, servicer, *codecs in services:
        serve_servicer(server, service, servicer, *codecs)
    bound = bind_grpc(server, host, port, "--port")
    await server.start()
    for service, *_ in services:
        await checker.set(service.full_name, health_pb2.HealthCheckResponse.SERVING)
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("%s listening on %s:%d", name, host, bound)
    return RunningServer(server, bound, checker)
