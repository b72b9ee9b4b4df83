"""Settings of the logs service process (`bbapi logs`)."""

from pydantic import Field

from services.common.janitor import JanitorSettings


class LogsSettings(JanitorSettings):
    host: str = Field("0.0.0.0", description="address the internal gRPC server binds")
    port: int = Field(7003, description="internal gRPC port (0 picks a free one)")
    database: str = Field("sqlite:///./bbapi-data/logs.db",
                          description="database URL: sqlite:///FILE or postgresql://USER@HOST/DB")
    metrics_port: int = Field(9090, description="Prometheus /metrics port (0 disables it)")
    metadata_target: str = Field("127.0.0.1:7002", description="host:port of the metadata service, which "
                                                               "holds the retention policies")
