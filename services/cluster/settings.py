"""Settings of `bbapi cluster` and its management commands."""

from pathlib import Path

from pydantic import ByteSize, Field

from services.blobstore.cluster.placement import MAX_MEMBERS
from services.blobstore.local.volume import min_free_field
from services.common.settings import CommonSettings

DEFAULT_DIR = Path("./bbapi-cluster")


class ClusterSettings(CommonSettings):
    data_dir: Path = Field(DEFAULT_DIR, description="directory for every process's state: a sub-directory per CAS "
                                                    "shard, SQLite files, logs/ and membership.json")
    database: str = Field("", description="PostgreSQL URL shared by the metadata and logs processes; empty means "
                                          "SQLite files in the data directory (then one process each)")
    host: str = Field("0.0.0.0", description="address the gateways' public gRPC and HTTP ports bind")
    grpc_port: int = Field(1985, description="public gRPC port, shared by every gateway (0 picks a free one)")
    http_port: int = Field(8080, description="public HTTP port, shared by every gateway (0 picks a free one)")
    gateways: int = Field(2, ge=1, description="gateway processes")
    cas_shards: int = Field(3, ge=1, le=MAX_MEMBERS,
                            description="CAS shard processes, each with its own directory and port")
    replication: int = Field(2, ge=1, description="copies kept of every blob and action result")
    metadata: int = Field(1, ge=1, description="metadata processes (more than one needs --database)")
    logs: int = Field(1, ge=1, description="logs processes (more than one needs --database)")
    zones: str = Field("", description="failure domains of the CAS shards, comma-separated (e.g. a,b,c): shard cas-N "
                                        "is in the (N mod count)-th; a key's replicas go to distinct zones when there "
                                        "are at least --replication of them. Empty: no zones")
    max_size_bytes: ByteSize = Field(ByteSize(10 * 1024**3), description="disk budget of each CAS shard, e.g. 50GiB")
    min_age_seconds: float = Field(3 * 3600, ge=0, description="blobs used more recently are never evicted")
    min_free_bytes: ByteSize = min_free_field()
    key_cache_seconds: float = Field(30.0, description="how long a gateway trusts a resolved API key")
    drain_seconds: float = Field(300.0, ge=0, description="how long a stopping gateway lets running calls and "
                                                          "streams (BES, transfers) finish before they are cancelled; "
                                                          "the supervisor waits that long plus 10 s, then kills it")
    restart_delay_seconds: float = Field(1.0, ge=0, description="wait before restarting a process that exited "
                                                                "(doubles while it keeps crashing, up to 30 s)")

    def zone_list(self) -> list[str]:
        return [zone.strip() for zone in self.zones.split(",") if zone.strip()]


class ManageSettings(CommonSettings):
    data_dir: Path = Field(DEFAULT_DIR, description="data directory of the running `bbapi cluster`")


class ScaleSettings(ManageSettings):
    cas_shards: int = Field(..., ge=1, le=MAX_MEMBERS, description="the CAS shard count to move to")


class RestartSettings(ManageSettings):
    process: str = Field(..., description="the process to restart, e.g. gateway-0 (`bbapi cluster status` lists them)")
