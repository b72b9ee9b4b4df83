"""invocations.parent_run_id: a child names its parent's RUN_ID (build metadata PARENT_RUN_ID)

Children were found by a shared RUN_ID, which also listed a run's other builds; BuildBuddy links
a child to its parent through PARENT_RUN_ID. The run_id index served only that lookup.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # the default fills existing rows without rebuilding the table (SQLite could not drop it cheaply)
    op.add_column("invocations", sa.Column("parent_run_id", sa.String(length=255), nullable=False,
                                           server_default=""))
    op.drop_index("ix_invocations_run", table_name="invocations")
    op.create_index("ix_invocations_parent_run", "invocations", ["tenant", "parent_run_id"])


def downgrade() -> None:
    op.drop_index("ix_invocations_parent_run", table_name="invocations")
    op.create_index("ix_invocations_run", "invocations", ["tenant", "run_id"])
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("parent_run_id")
