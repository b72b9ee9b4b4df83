"""build logs

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column("tenant", sa.String(length=63), nullable=False),
            sa.Column("invocation_id", sa.String(length=64), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "log_streams", *_key(),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("sealed_chunks", sa.Integer(), nullable=False),
        sa.Column("tail_bytes", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "invocation_id"),
    )
    op.create_table(
        "log_chunks", *_key(),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "invocation_id", "chunk_index"),
    )
    op.create_table(
        "log_parts", *_key(),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "invocation_id", "sequence"),
    )


def downgrade() -> None:
    for table in ("log_parts", "log_chunks", "log_streams"):
        op.drop_table(table)
