"""Settings of the all-in-one process (`bbapi serve`): every service on embedded defaults."""

from pathlib import Path

from pydantic import ByteSize, Field, SecretStr

from services.blobstore.local.volume import min_free_field
from services.common.db import sqlite_url
from services.common.janitor import JanitorSettings
from services.common.retention import RetentionSettings
from services.common.settings import CommonSettings
from services.gateway.settings import EdgeSettings


class EmbeddedDatabase(CommonSettings):
    """Where the all-in-one keeps its tables: SQLite files in the data directory unless a URL is given."""

    data_dir: Path = Field(Path("./bbapi-data"), description="directory for the database, blobs and logs")
    database: str = Field("", description="database URL; empty means SQLite files in the data directory")

    def database_url(self, name: str) -> str:
        if self.database:
            return self.database
        return sqlite_url(self.data_dir / f"{name}.db")


class ServeSettings(EmbeddedDatabase, EdgeSettings, RetentionSettings, JanitorSettings):
    max_size_bytes: ByteSize = Field(ByteSize(10 * 1024**3), description="CAS budget on disk, e.g. 50GiB")
    min_age_seconds: float = Field(3 * 3600, ge=0, description="blobs used more recently are never evicted")
    min_free_bytes: ByteSize = min_free_field()
    bootstrap_api_key: SecretStr | None = Field(
        None, description="an admin key for tenant 'default' to create at start if absent")
