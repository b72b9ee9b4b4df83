"""insights: indexes for SearchInvocations, target history and flaky tests

Invocations get an overall_status column (OverallStatus, from status and success) and an index
(tenant, column, created_at_usec, id) per searched column; the searched text columns become bounded
(String(255), as every indexed string: PostgreSQL's btree entries are limited) and longer stored
values are clipped as the ingest now clips them. Targets get their invocation's tenant, creation time,
branch and commit, filled in from the invocations, and indexes for one label's history and for a
window's test outcomes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED = 255
BOUNDED = ("command", "pattern", "user", "host", "role", "repo_url", "branch_name")
SEARCHED = ("repo_url", "branch_name", "user", "host", "role", "command", "pattern", "overall_status")
# InvocationStatus COMPLETE (1) splits by success into SUCCESS (1) and FAILURE (2); PARTIAL (2) is
# IN_PROGRESS (3), DISCONNECTED (3) is DISCONNECTED (4)
OVERALL = ("CASE WHEN status = 1 AND success THEN 1 WHEN status = 1 THEN 2 WHEN status = 2 THEN 3 "
           "WHEN status = 3 THEN 4 ELSE 0 END")
TARGET_INDEXES = {
    "ix_invocation_targets_history": ["tenant", "label", "created_at_usec", "invocation"],
    "ix_invocation_targets_branch_history": ["tenant", "label", "branch_name", "created_at_usec", "invocation"],
    "ix_invocation_targets_outcomes": ["tenant", "status", "created_at_usec"],
}
FROM_INVOCATION = ("tenant", "created_at_usec", "branch_name", "commit_sha")


def upgrade() -> None:
    for column in BOUNDED:
        op.execute(f'UPDATE invocations SET "{column}" = substr("{column}", 1, {INDEXED}) '
                   f'WHERE length("{column}") > {INDEXED}')
    with op.batch_alter_table("invocations") as batch:  # SQLite rebuilds the table
        for column in BOUNDED:
            batch.alter_column(column, type_=sa.String(INDEXED), existing_type=sa.Text(), existing_nullable=False)
        batch.add_column(sa.Column("overall_status", sa.SmallInteger(), nullable=False, server_default="0"))
    op.execute(f"UPDATE invocations SET overall_status = {OVERALL}")
    for column in SEARCHED:
        op.create_index(f"ix_invocations_by_{column}", "invocations", ["tenant", column, "created_at_usec", "id"])

    with op.batch_alter_table("invocation_targets") as batch:
        batch.add_column(sa.Column("tenant", sa.String(63), nullable=False, server_default=""))
        batch.add_column(sa.Column("created_at_usec", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("branch_name", sa.String(INDEXED), nullable=False, server_default=""))
        batch.add_column(sa.Column("commit_sha", sa.String(INDEXED), nullable=False, server_default=""))
    owner = "FROM invocations i WHERE i.id = invocation_targets.invocation"
    assignments = ", ".join(f"{column} = (SELECT i.{column} {owner})" for column in FROM_INVOCATION)
    op.execute(f"UPDATE invocation_targets SET {assignments} WHERE EXISTS (SELECT 1 {owner})")
    for name, columns in TARGET_INDEXES.items():
        op.create_index(name, "invocation_targets", columns)


def downgrade() -> None:
    for name in TARGET_INDEXES:
        op.drop_index(name, "invocation_targets")
    with op.batch_alter_table("invocation_targets") as batch:
        for column in FROM_INVOCATION:
            batch.drop_column(column)
    for column in SEARCHED:
        op.drop_index(f"ix_invocations_by_{column}", "invocations")
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("overall_status")
        for column in BOUNDED:
            batch.alter_column(column, type_=sa.Text(), existing_type=sa.String(INDEXED), existing_nullable=False)
