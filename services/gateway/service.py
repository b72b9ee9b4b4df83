"""A running gateway: the public gRPC front and the HTTP app, over the internal services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc
import uvicorn
from fastapi import APIRouter, FastAPI

from services.blobstore.stack import Stack
from services.common.exclusive import listen
from services.common.rpc import serving
from services.common.tenant_labels import limit_tenants
from services.gateway import api, bytestream, cas_wire, download, http_api, insights, tls
from services.gateway.api import ApiServicer
from services.gateway.auth import KeyResolver
from services.gateway.bes import BuildEventServicer
from services.gateway.bytestream import ByteStreamServicer
from services.gateway.cache import ActionCacheServicer, CapabilitiesServicer, CasServicer
from services.gateway.cache_stats import CacheStatsRecorder
from services.gateway.front import Front
from services.gateway.http import Readiness, admin_app, create_app
from services.gateway.insights import InsightsServicer
from services.gateway.settings import GatewaySettings
from services.gen.bbapi.internal.v1 import logs_pb2_grpc, metadata_pb2_grpc
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.google.bytestream import bytestream_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2 as pbe_pb2

log = logging.getLogger(__name__)


@dataclass
class Backends:
    """Connections to the internal services the gateway fronts."""

    blobs: Stack
    metadata: grpc.aio.Channel
    logs: grpc.aio.Channel
    routers: Sequence[APIRouter] = field(default_factory=list)  # extra HTTP routes, e.g. /status/membership
    draining: bool = False  # stopping: finish what runs, take nothing new

    async def checks(self) -> dict[str, bool]:
        metadata, logs, cas = await asyncio.gather(serving(self.metadata, 2), serving(self.logs, 2),
                                                   self.blobs.cluster.ready())
        return {"metadata": metadata, "logs": logs, "cas": cas, "accepting": not self.draining}

    def readiness(self) -> Readiness:
        """Ready when the pod can serve what it serves itself: the cache, and not stopping. A
        metadata or logs restart must not take every gateway out of rotation (cache traffic
        would stop too); build event streams ride it out with their own retries, and known keys
        stay cached."""
        return Readiness(self.checks, required=("cas", "accepting"))

    async def close(self) -> None:
        await self.blobs.close()
        await self.metadata.close()
        await self.logs.close()


@dataclass
class HttpServer:
    """One uvicorn server on a socket of its own, run as a task."""

    server: uvicorn.Server
    port: int
    task: asyncio.Task[None]

    @classmethod
    def start(cls, config: uvicorn.Config, sock: socket.socket) -> HttpServer:
        server = _HttpServer(config)
        return cls(server, sock.getsockname()[1], asyncio.create_task(server.serve(sockets=[sock])))

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


@dataclass
class GatewayService:
    front: Front
    grpc_port: int
    http: HttpServer
    admin: HttpServer | None
    backends: Backends
    drain_seconds: float
    cache_stats: CacheStatsRecorder

    @property
    def http_port(self) -> int:
        return self.http.port

    async def stop(self) -> None:
        """Drain, then stop: readiness fails at once, new calls are refused (gRPC sends GOAWAY,
        HTTP stops accepting), and calls and streams already running get `drain_seconds` to
        finish before they are cancelled. The admin port answers (not ready) until the end."""
        self.backends.draining = True
        await asyncio.gather(self.front.stop(self.drain_seconds), self.http.stop())
        await self.cache_stats.stop()
        if self.admin is not None:
            await self.admin.stop()
        await self.backends.close()


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the process (CLI or test) decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind_http(settings: GatewaySettings) -> tuple[socket.socket, socket.socket | None]:
    """The HTTP sockets, bound before anything starts so a taken port fails the start cleanly.
    Only the public ports may be shared between gateways; the admin port belongs to one process."""
    http = listen(settings.host, settings.http_port, "--http-port", share_port=settings.share_ports)
    if settings.admin_port is None:
        return http, None
    try:
        return http, listen(settings.host, settings.admin_port, "--admin-port")
    except BaseException:
        http.close()
        raise


async def start(settings: GatewaySettings, backends: Backends) -> GatewayService:
    limit_tenants(settings.metrics_tenants)
    resolver = KeyResolver(backends.metadata, ttl=settings.key_cache_seconds)
    blobs = backends.blobs.blobs
    metadata = metadata_pb2_grpc.MetadataStub(backends.metadata)
    cache_stats = CacheStatsRecorder(metadata, settings.cache_stats_flush_seconds)
    front = Front(resolver.authenticate, cache_stats.observe)
    services = re_pb2.DESCRIPTOR.services_by_name
    front.add(services["Capabilities"], CapabilitiesServicer())
    front.add(services["ContentAddressableStorage"], CasServicer(blobs), codecs=cas_wire.CODECS)
    front.add(services["ActionCache"], ActionCacheServicer(blobs))
    front.add(bytestream_pb2.DESCRIPTOR.services_by_name["ByteStream"], ByteStreamServicer(blobs),
              codecs=bytestream.CODECS)
    front.add(pbe_pb2.DESCRIPTOR.services_by_name["PublishBuildEvent"],
              BuildEventServicer(backends.metadata, backends.logs, resolver, settings.bes_options()))
    api_servicer = ApiServicer(metadata,
                               logs_pb2_grpc.LogsStub(backends.logs), blobs)
    front.add(http_api.SERVICE, api_servicer, aliases=["buildbuddy.api.v1.ApiService"], codecs=api.CODECS)
    insights_servicer = InsightsServicer(metadata)
    front.add(insights.SERVICE, insights_servicer)
    certificate = tls.certificate(settings)
    http_socket, admin_socket = _bind_http(settings)
    try:
        grpc_port = await front.start(settings.host, settings.grpc_port,
                                      None if certificate is None else certificate.grpc_credentials(),
                                      share_port=settings.share_ports)
    except BaseException:
        for sock in (http_socket, admin_socket):
            if sock is not None:
                sock.close()
        raise

    readiness = backends.readiness()
    app = create_app(readiness, None if settings.admin_port is not None else backends.routers)
    http_api.add_routes(app, resolver.authenticate, [
        http_api.Routes(http_api.SERVICE, api_servicer, "/api/v1"),
        http_api.Routes(insights.SERVICE, insights_servicer, "/api/bbapi/v1")])
    download.add_route(app, blobs, resolver.authenticate)
    def config(app: FastAPI, tls: Callable[[], ssl.SSLContext] | None = None) -> uvicorn.Config:
        return uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                              timeout_graceful_shutdown=math.ceil(settings.drain_seconds),
                              ssl_context_factory=None if tls is None else lambda _config, _default: tls())

    http = HttpServer.start(config(app, None if certificate is None else certificate.ssl_context), http_socket)
    admin = None
    if admin_socket is not None:
        admin = HttpServer.start(config(admin_app(readiness, backends.routers)), admin_socket)
        log.info("gateway: admin HTTP (metrics, status) on %s:%d", settings.host, admin.port)
    log.info("gateway: gRPC on %s:%d, HTTP on %s:%d%s", settings.host, grpc_port, settings.host,
             http.port, "" if certificate is None else f" (TLS, {certificate.cert})")
    cache_stats.start()
    return GatewayService(front, grpc_port, http, admin, backends, settings.drain_seconds, cache_stats)
