"""Settings of the metadata service process (`bbapi metadata`)."""

from pydantic import Field, SecretStr

from services.common.janitor import JanitorSettings
from services.common.retention import RetentionSettings


class MetadataSettings(RetentionSettings, JanitorSettings):
    host: str = Field("0.0.0.0", description="address the internal gRPC server binds")
    port: int = Field(7002, description="internal gRPC port (0 picks a free one)")
    database: str = Field("sqlite:///./bbapi-data/metadata.db",
                          description="database URL: sqlite:///FILE or postgresql://USER@HOST/DB")
    metrics_port: int = Field(9090, description="Prometheus /metrics port (0 disables it)")
    bootstrap_api_key: SecretStr | None = Field(
        None, description="an admin key for tenant 'default' to create at start if absent (deployments)")
