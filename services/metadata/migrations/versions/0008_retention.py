"""retention: per-tenant policies, expired invocations being deleted, invocations by last activity

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("invocation_seconds", sa.BigInteger(), nullable=True),
        sa.Column("audit_seconds", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_usec", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant"),
    )
    op.create_table(
        "retention_expired_invocations",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_invocations_activity", "invocations", ["tenant", "updated_at_usec"])


def downgrade() -> None:
    op.drop_index("ix_invocations_activity", table_name="invocations")
    op.drop_table("retention_expired_invocations")
    op.drop_table("retention_policies")
