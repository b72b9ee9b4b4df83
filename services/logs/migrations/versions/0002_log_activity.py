"""log_streams.updated_at_usec: a log's last activity, from which retention counts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Logs stored before have no known age: their window starts now, so an upgrade expires nothing early.
    now_usec = time.time_ns() // 1000
    with op.batch_alter_table("log_streams") as batch:
        batch.add_column(sa.Column("updated_at_usec", sa.BigInteger(), nullable=False,
                                   server_default=sa.text(str(now_usec))))
        batch.create_index("ix_log_streams_activity", ["tenant", "updated_at_usec"])


def downgrade() -> None:
    with op.batch_alter_table("log_streams") as batch:
        batch.drop_index("ix_log_streams_activity")
        batch.drop_column("updated_at_usec")
