"""Tables owned by the metadata service (SQLAlchemy 2 declarative models).

Alembic migrations under migrations/ create them; the models are the single description the
migrations are checked against (tests compare autogenerate output with the migrations).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.gen.bbapi.api.v1 import insights_pb2


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """An API key: only its SHA-256 is kept; it belongs to one tenant with one capability level."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(63), index=True)
    capability: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200), default="")
    hint: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --- Invocations: what Bazel's build events say, indexed for the API --------------------------------
# Child rows hang off `invocations.id` (a compact integer) and are keyed by the BES sequence number of
# the event that produced them, so a re-sent event can never produce a second row. They carry no
# foreign key: they are only ever written in the transaction that holds the invocation row's claim,
# and a per-row key check nearly halved ingest throughput on PostgreSQL. Retention deletes an
# expired invocation's rows from every table whose primary key starts with `invocation`. Strings that are indexed
# have a bounded length (PostgreSQL's btree entries are limited); the ingest clips them.

BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite auto-increments only INTEGER PRIMARY KEY
INDEXED = 255
LABEL = 600


def _invocation_key() -> Mapped[int]:
    """The first primary-key column of every invocation child table: `invocations.id`."""
    return mapped_column(BigInteger, primary_key=True)


# The invocation columns SearchInvocations filters by, each with an index (tenant, column, created_at_usec, id)
SEARCHED = ("repo_url", "branch_name", "user", "host", "role", "command", "pattern", "overall_status")


class Invocation(Base):
    """One build, per tenant: the api.v1 Invocation fields plus the ingest's own bookkeeping."""

    __tablename__ = "invocations"
    __table_args__ = (
        UniqueConstraint("tenant", "invocation_id"),
        Index("ix_invocations_newest", "tenant", "created_at_usec", "id"),
        Index("ix_invocations_commit", "tenant", "commit_sha", "created_at_usec", "id"),
        Index("ix_invocations_parent", "tenant", "parent_invocation_id"),
        Index("ix_invocations_parent_run", "tenant", "parent_run_id"),
        Index("ix_invocations_build", "invocation_id"),
        Index("ix_invocations_activity", "tenant", "updated_at_usec"),  # retention expires by last activity
        # InsightsService.SearchInvocations: each filter walks its own index newest first
        *(Index(f"ix_invocations_by_{column}", "tenant", column, "created_at_usec", "id") for column in SEARCHED),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(63))
    invocation_id: Mapped[str] = mapped_column(String(36))
    key_id: Mapped[str] = mapped_column(String(32))
    # SHA-256 of the BES build_id of the stream that opened it: only the same build may resume it.
    build_id_hash: Mapped[str] = mapped_column(String(64))
    # Ingest state: the stream that may write (attempt), what is stored (last_sequence, finished).
    attempt: Mapped[int] = mapped_column(Integer)
    last_sequence: Mapped[int] = mapped_column(BigInteger)
    finished: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int] = mapped_column(SmallInteger)
    created_at_usec: Mapped[int] = mapped_column(BigInteger)
    updated_at_usec: Mapped[int] = mapped_column(BigInteger)
    # Derived from the events; `sources` holds each field's source priority (reference §3.3).
    # bbapi.api.v1.OverallStatus, from status and success: one indexed value to search by
    overall_status: Mapped[int] = mapped_column(SmallInteger)
    success: Mapped[bool] = mapped_column(Boolean)
    bazel_exit_code: Mapped[str] = mapped_column(Text)
    command: Mapped[str] = mapped_column(String(INDEXED))
    pattern: Mapped[str] = mapped_column(String(INDEXED))
    user: Mapped[str] = mapped_column(String(INDEXED))
    host: Mapped[str] = mapped_column(String(INDEXED))
    role: Mapped[str] = mapped_column(String(INDEXED))
    repo_url: Mapped[str] = mapped_column(String(INDEXED))
    branch_name: Mapped[str] = mapped_column(String(INDEXED))
    commit_sha: Mapped[str] = mapped_column(String(INDEXED))
    parent_invocation_id: Mapped[str] = mapped_column(String(INDEXED))
    run_id: Mapped[str] = mapped_column(String(INDEXED))
    parent_run_id: Mapped[str] = mapped_column(String(INDEXED))
    started_at_usec: Mapped[int] = mapped_column(BigInteger)
    duration_usec: Mapped[int] = mapped_column(BigInteger)
    action_count: Mapped[int] = mapped_column(BigInteger)
    sources: Mapped[dict[str, int]] = mapped_column(JSON)


class InvocationEvent(Base):
    """Every event Bazel sent, redacted (Progress text blanked: the logs service keeps it)."""

    __tablename__ = "invocation_events"

    invocation: Mapped[int] = _invocation_key()
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class InvocationMetadata(Base):
    """BuildMetadata (kind 1) and WorkspaceStatus (kind 2) entries, in the order Bazel sent them."""

    __tablename__ = "invocation_metadata"

    invocation: Mapped[int] = _invocation_key()
    kind: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)


class EventFile:
    """A file an event lists, at its position in the event; hash and size come from its bytestream:// URI."""

    invocation: Mapped[int] = _invocation_key()
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    uri: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class NamedSet(Base):
    """A NamedSetOfFiles event: its id and the ids of the sets it includes (its files are artifacts)."""

    __tablename__ = "invocation_named_sets"
    __table_args__ = (Index("ix_invocation_named_sets_id", "invocation", "set_id"),)

    invocation: Mapped[int] = _invocation_key()
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    set_id: Mapped[str] = mapped_column(String(INDEXED))
    children: Mapped[list[str]] = mapped_column(JSON)


class Artifact(EventFile, Base):
    """A file of a NamedSetOfFiles event (the event's sequence number identifies the set)."""

    __tablename__ = "invocation_artifacts"


class Target(Base):
    """A target by label (configurations collapse into one, as in the reference).

    It carries its invocation's tenant, creation time, branch and commit (kept in step by the ingest), so
    one label's history and a window's test results are index walks that never visit other invocations.
    """

    __tablename__ = "invocation_targets"
    __table_args__ = (
        Index("ix_invocation_targets_history", "tenant", "label", "created_at_usec", "invocation"),
        Index("ix_invocation_targets_branch_history", "tenant", "label", "branch_name", "created_at_usec",
              "invocation"),
        Index("ix_invocation_targets_outcomes", "tenant", "status", "created_at_usec"),
    )

    invocation: Mapped[int] = _invocation_key()
    label: Mapped[str] = mapped_column(String(LABEL), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63))
    created_at_usec: Mapped[int] = mapped_column(BigInteger)
    branch_name: Mapped[str] = mapped_column(String(INDEXED))
    commit_sha: Mapped[str] = mapped_column(String(INDEXED))
    status: Mapped[int] = mapped_column(SmallInteger)
    rule_type: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON)
    start_usec: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_usec: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class TargetTag(Base):
    """One tag of one target: the index behind GetTarget's tag selector."""

    __tablename__ = "invocation_target_tags"

    invocation: Mapped[int] = _invocation_key()
    tag: Mapped[str] = mapped_column(String(INDEXED), primary_key=True)
    label: Mapped[str] = mapped_column(String(LABEL), primary_key=True)


class Action(Base):
    """An action: from ActionExecuted, a successful TargetComplete or a TestResult event."""

    __tablename__ = "invocation_actions"
    __table_args__ = (Index("ix_invocation_actions_label", "invocation", "target_label", "sequence"),)

    invocation: Mapped[int] = _invocation_key()
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    target_label: Mapped[str] = mapped_column(String(LABEL))
    configuration_id: Mapped[str] = mapped_column(String(INDEXED))
    action_key: Mapped[str] = mapped_column(String(INDEXED))
    shard: Mapped[int] = mapped_column(Integer)
    run: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)


class ActionFile(EventFile, Base):
    """A file of an action (the action is the event's sequence number)."""

    __tablename__ = "invocation_action_files"


class AuditEntry(Base):
    """One accountable act of an API key (services.metadata.audit)."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_tenant_time", "tenant", "created_at_usec", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(63))
    key_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(1024))
    detail: Mapped[str] = mapped_column(String(256), default="")
    created_at_usec: Mapped[int] = mapped_column(BigInteger)


class RetentionPolicy(Base):
    """A tenant's own retention windows in seconds (0 keeps forever); NULL follows the service default."""

    __tablename__ = "retention_policies"

    tenant: Mapped[str] = mapped_column(String(63), primary_key=True)
    invocation_seconds: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    audit_seconds: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at_usec: Mapped[int] = mapped_column(BigInteger)


class ExpiredInvocation(Base):
    """An expired invocation whose row is gone (queries no longer see it) and whose child rows the
    janitor is still deleting, a bounded batch per transaction; the row goes with the last of them."""

    __tablename__ = "retention_expired_invocations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # invocations.id
    tenant: Mapped[str] = mapped_column(String(63))


# One counter column per bbapi.api.v1.CacheStats field, named as the field: the message is the schema.
CACHE_STATS_FIELDS = tuple(field.name for field in insights_pb2.CacheStats.DESCRIPTOR.fields)

# The remote cache's work for one invocation of a tenant, summed from the gateways' flushes
# (services.metadata.insights.cache_stats). Keyed by the invocation id Bazel sent, not by
# `invocations.id`: cache calls may come before the build's events, or without any. Expires with the
# tenant's invocation retention, by its last call.
InvocationCacheStats = Table(
    "invocation_cache_stats", Base.metadata,
    Column("tenant", String(63), primary_key=True),
    Column("invocation_id", String(INDEXED), primary_key=True),
    *(Column(name, BigInteger, nullable=False) for name in CACHE_STATS_FIELDS),
    Column("last_call_usec", BigInteger, nullable=False),
    Index("ix_invocation_cache_stats_activity", "tenant", "last_call_usec"),
)
