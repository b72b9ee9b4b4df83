"""Settings of one CAS shard process (`bbapi cas`)."""

from pathlib import Path

from pydantic import ByteSize, Field

from services.blobstore.local.volume import min_free_field
from services.common.settings import CommonSettings


class CasSettings(CommonSettings):
    host: str = Field("0.0.0.0", description="address the internal gRPC server binds")
    port: int = Field(7001, description="internal gRPC port (0 picks a free one)")
    data_dir: Path = Field(Path("./bbapi-data/cas"), description="directory holding this shard's blobs")
    max_size_bytes: ByteSize = Field(ByteSize(10 * 1024**3),
                                     description="cache budget on disk, e.g. 50GiB; older data is evicted beyond it")
    low_water_fraction: float = Field(0.9, gt=0, le=1, description="eviction frees space down to this fraction")
    min_age_seconds: float = Field(3 * 3600, ge=0,
                                   description="data used more recently than this is never evicted (Bazel assumes 3h)")
    min_free_bytes: ByteSize = min_free_field()
    shard_id: str = Field("cas-0", description="this shard's member id (the pod name in Kubernetes)")
    metrics_port: int = Field(9090, description="Prometheus /metrics port (0 disables it)")
