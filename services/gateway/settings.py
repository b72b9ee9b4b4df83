"""Settings of the gateway process (`bbapi gateway`)."""

from pathlib import Path

from pydantic import Field

from services.common.settings import CommonSettings
from services.common.tenant_labels import DEFAULT_LIMIT
from services.gateway.bes_options import BesOptions
from services.gateway.tls import TlsSettings


class BesSettings(CommonSettings):
    """How the Build Event Service treats Bazel's streams (the gateway's, and `bbapi serve`'s)."""

    allow_anonymous_builds: bool = Field(False, description="accept build event streams without an API key "
                                                            "(stored under tenant 'anonymous')")
    bes_linger_seconds: float = Field(0.5, ge=0, description="how long a build event may wait for others to be "
                                                              "stored with it in one transaction (group commit)")
    bes_backend_retry_seconds: float = Field(60.0, ge=0, description="how long a build's stream is held open while "
                                                                     "the metadata or logs service is unreachable")

    def bes_options(self) -> BesOptions:
        return BesOptions(self.bes_linger_seconds, self.bes_backend_retry_seconds, self.allow_anonymous_builds)


class EdgeSettings(TlsSettings, BesSettings):
    """How the public edge listens, stops and takes build events; shared by `bbapi gateway` and `bbapi serve`."""

    host: str = Field("0.0.0.0", description="address the public gRPC and HTTP servers bind")
    grpc_port: int = Field(1985, description="public gRPC port: REAPI cache, Build Event Service, api.v1")
    http_port: int = Field(8080, description="public HTTP port: /api/v1/*, /healthz, /readyz (and /metrics "
                                             "unless there is an admin port)")
    admin_port: int | None = Field(None, description="plaintext port for /metrics, /status/membership and "
                                                     "probes, kept off the public port; unset serves them there")
    drain_seconds: float = Field(300.0, ge=0, description="on stop, how long running calls and streams (BES, "
                                                          "transfers) may finish before they are cancelled")
    key_cache_seconds: float = Field(30.0, description="how long a resolved API key is trusted before re-checking")
    metrics_tenants: int = Field(DEFAULT_LIMIT, ge=0, description="distinct tenants labelled by name in the cache "
                                                                 "metrics; later ones count as tenant '_other'")
    cache_stats_flush_seconds: float = Field(1.0, gt=0, description="how often the cache statistics counted per "
                                                                     "invocation are sent to the metadata service")


class GatewaySettings(EdgeSettings):
    metadata_target: str = Field("127.0.0.1:7002", description="host:port of the metadata service")
    logs_target: str = Field("127.0.0.1:7003", description="host:port of the logs service")
    membership_file: Path = Field(Path("/etc/bbapi/membership.json"),
                                  description="CAS membership JSON (members, replication); re-read when it changes")
    share_ports: bool = Field(False, description="bind the public gRPC and HTTP ports with SO_REUSEPORT so several "
                                                 "gateway processes on one machine share them (`bbapi cluster` sets "
                                                 "it); otherwise a taken port fails the start")
