"""invocations.build_id_hash: the BES build_id an invocation is bound to (a retry proves it is the same build)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        # '' on rows stored before: bound to no build, so any stream with the tenant's key may resume them
        batch.add_column(sa.Column("build_id_hash", sa.String(64), nullable=False, server_default=""))
        batch.create_index("ix_invocations_build", ["invocation_id"])


def downgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        batch.drop_index("ix_invocations_build")
        batch.drop_column("build_id_hash")
