"""cache statistics per invocation: one row per (tenant, invocation id Bazel sent) with a counter per
bbapi.api.v1.CacheStats field

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("action_cache_hits", "action_cache_misses", "action_cache_uploads", "cas_downloads",
            "cas_download_bytes", "cas_download_misses", "cas_uploads", "cas_upload_bytes", "cas_digests_checked",
            "cas_digests_missing", "download_usec", "upload_usec", "lookup_usec")


def upgrade() -> None:
    op.create_table(
        "invocation_cache_stats",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("invocation_id", sa.String(length=255), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTERS),
        sa.Column("last_call_usec", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "invocation_id"),
    )
    op.create_index("ix_invocation_cache_stats_activity", "invocation_cache_stats", ["tenant", "last_call_usec"])


def downgrade() -> None:
    op.drop_index("ix_invocation_cache_stats_activity", table_name="invocation_cache_stats")
    op.drop_table("invocation_cache_stats")
