"""invocations: events, metadata, named sets, artifacts, targets, actions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _invocation() -> sa.Column[int]:
    return sa.Column("invocation", sa.BigInteger(), nullable=False)


def _file_columns() -> list[sa.Column[object]]:
    return [sa.Column("name", sa.Text(), nullable=False), sa.Column("uri", sa.Text(), nullable=False),
            sa.Column("hash", sa.String(length=128), nullable=False),
            sa.Column("size_bytes", sa.BigInteger(), nullable=False)]


def upgrade() -> None:
    text = ("command", "pattern", "user", "host", "role", "repo_url", "branch_name")
    op.create_table(
        "invocations",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("invocation_id", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("created_at_usec", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_usec", sa.BigInteger(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("bazel_exit_code", sa.Text(), nullable=False),
        *(sa.Column(name, sa.Text(), nullable=False) for name in text),
        sa.Column("commit_sha", sa.String(length=255), nullable=False),
        sa.Column("parent_invocation_id", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("started_at_usec", sa.BigInteger(), nullable=False),
        sa.Column("duration_usec", sa.BigInteger(), nullable=False),
        sa.Column("action_count", sa.BigInteger(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.UniqueConstraint("tenant", "invocation_id"),
    )
    op.create_index("ix_invocations_newest", "invocations", ["tenant", "created_at_usec", "id"])
    op.create_index("ix_invocations_commit", "invocations", ["tenant", "commit_sha", "created_at_usec", "id"])
    op.create_index("ix_invocations_parent", "invocations", ["tenant", "parent_invocation_id"])
    op.create_index("ix_invocations_run", "invocations", ["tenant", "run_id"])
    op.create_table(
        "invocation_events", _invocation(),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("invocation", "sequence"),
    )
    op.create_table(
        "invocation_metadata", _invocation(),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("invocation", "kind", "sequence", "position"),
    )
    op.create_table(
        "invocation_named_sets", _invocation(),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("set_id", sa.String(length=255), nullable=False),
        sa.Column("children", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("invocation", "sequence"),
    )
    op.create_index("ix_invocation_named_sets_id", "invocation_named_sets", ["invocation", "set_id"])
    op.create_table(
        "invocation_artifacts", _invocation(),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        *_file_columns(),
        sa.PrimaryKeyConstraint("invocation", "sequence", "position"),
    )
    op.create_table(
        "invocation_targets", _invocation(),
        sa.Column("label", sa.String(length=600), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("rule_type", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("test_size", sa.SmallInteger(), nullable=False),
        sa.Column("start_usec", sa.BigInteger(), nullable=True),
        sa.Column("duration_usec", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("invocation", "label"),
    )
    op.create_table(
        "invocation_target_tags", _invocation(),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.Column("label", sa.String(length=600), nullable=False),
        sa.PrimaryKeyConstraint("invocation", "tag", "label"),
    )
    op.create_table(
        "invocation_actions", _invocation(),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("target_label", sa.String(length=600), nullable=False),
        sa.Column("configuration_id", sa.String(length=255), nullable=False),
        sa.Column("action_key", sa.String(length=255), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("invocation", "sequence"),
    )
    op.create_index("ix_invocation_actions_label", "invocation_actions", ["invocation", "target_label", "sequence"])
    op.create_table(
        "invocation_action_files", _invocation(),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        *_file_columns(),
        sa.PrimaryKeyConstraint("invocation", "sequence", "position"),
    )


def downgrade() -> None:
    for table in ("invocation_action_files", "invocation_actions", "invocation_target_tags", "invocation_targets",
                  "invocation_artifacts", "invocation_named_sets", "invocation_metadata", "invocation_events"):
        op.drop_table(table)
    for index in ("ix_invocations_run", "ix_invocations_parent", "ix_invocations_commit", "ix_invocations_newest"):
        op.drop_index(index, table_name="invocations")
    op.drop_table("invocations")
