"""drop invocation_targets.test_size (written, never read: the API's Target has no test size)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invocation_targets") as batch:  # SQLite rebuilds the table
        batch.drop_column("test_size")


def downgrade() -> None:
    with op.batch_alter_table("invocation_targets") as batch:
        batch.add_column(sa.Column("test_size", sa.SmallInteger(), nullable=False, server_default="0"))
