"""Stored rows as api.v1 messages."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.gen.api.v1 import action_pb2, common_pb2, file_pb2, invocation_pb2, target_pb2
from services.metadata.invocations import ids
from services.metadata.models import Action, EventFile, Invocation, Target


def invocation(row: Invocation) -> invocation_pb2.Invocation:
    return invocation_pb2.Invocation(
        id=invocation_pb2.Invocation.Id(invocation_id=row.invocation_id), success=row.success, user=row.user,
        duration_usec=row.duration_usec, host=row.host, command=row.command, pattern=row.pattern,
        action_count=row.action_count, created_at_usec=row.created_at_usec, updated_at_usec=row.updated_at_usec,
        repo_url=row.repo_url, commit_sha=row.commit_sha, role=row.role, branch_name=row.branch_name,
        bazel_exit_code=row.bazel_exit_code,
        invocationStatus=invocation_pb2.InvocationStatus.ValueType(row.status))


def target_id(label: str) -> str:
    """Targets are named by their encoded label; an action of no target has no target id."""
    return ids.encode(label) if label else ""


def target(invocation_id: str, row: Target) -> target_pb2.Target:
    message = target_pb2.Target(
        id=target_pb2.Target.Id(invocation_id=invocation_id, target_id=target_id(row.label)), label=row.label,
        status=common_pb2.Status.ValueType(row.status), rule_type=row.rule_type, tag=row.tags,
        language=row.language)
    if row.duration_usec is not None:
        message.timing.CopyFrom(timing(row))
    return message


def timestamp(usec: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMicroseconds(usec)
    return stamp


def timing(row: Target) -> common_pb2.Timing:
    """A tested target's timing (only a TestSummary gives one)."""
    duration = Duration()
    duration.FromMicroseconds(row.duration_usec or 0)
    return common_pb2.Timing(start_time=timestamp(row.start_usec or 0), duration=duration)


def action(invocation_id: str, row: Action, files: list[file_pb2.File]) -> action_pb2.Action:
    return action_pb2.Action(
        id=action_pb2.Action.Id(invocation_id=invocation_id, target_id=target_id(row.target_label),
                                configuration_id=row.configuration_id, action_id=ids.encode(row.action_key)),
        file=files, target_label=row.target_label, shard=row.shard, run=row.run, attempt=row.attempt)


def file(row: EventFile) -> file_pb2.File:
    return file_pb2.File(name=row.name, uri=row.uri, hash=row.hash, size_bytes=row.size_bytes)
