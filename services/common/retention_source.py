"""What the logs janitor asks the metadata service: the policies, and which invocations it keeps.

`RetentionSource` is met by the metadata service's own expiry (in process, for `bbapi retention
run`) and by `RemoteRetention`, its internal gRPC contract (services running apart).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

import grpc

from services.common.durations import Duration
from services.common.errors import internal
from services.common.retention import Override, Policies
from services.gen.bbapi.internal.v1 import retention_pb2, retention_pb2_grpc


class RetentionSource(Protocol):
    async def policies(self) -> Policies: ...

    async def retained(self, tenant: str, asked: Collection[str], now_usec: int) -> set[str]: ...


def policies_message(policies: Policies) -> retention_pb2.RetentionPolicies:
    message = retention_pb2.RetentionPolicies(default_invocation_seconds=policies.invocations,
                                              default_audit_seconds=policies.audit)
    for tenant, override in policies.overrides.items():
        entry = message.overrides.add(tenant=tenant)
        if override.invocations is not None:
            entry.invocation_seconds = override.invocations
        if override.audit is not None:
            entry.audit_seconds = override.audit
    return message


def policies_of(message: retention_pb2.RetentionPolicies) -> Policies:
    def override(entry: retention_pb2.RetentionPolicy) -> Override:
        return Override(Duration(entry.invocation_seconds) if entry.HasField("invocation_seconds") else None,
                        Duration(entry.audit_seconds) if entry.HasField("audit_seconds") else None)

    return Policies(Duration(message.default_invocation_seconds), Duration(message.default_audit_seconds),
                    {entry.tenant: override(entry) for entry in message.overrides})


class RemoteRetention:
    """The metadata service's Retention contract over a channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = retention_pb2_grpc.RetentionStub(channel)

    async def policies(self) -> Policies:
        return policies_of(await internal(self.stub.GetPolicies(retention_pb2.GetRetentionPoliciesRequest())))

    async def retained(self, tenant: str, asked: Collection[str], now_usec: int) -> set[str]:
        answer = await internal(self.stub.Retained(retention_pb2.RetainedInvocationsRequest(
            tenant=tenant, invocation_ids=list(asked), now_usec=now_usec)))
        return set(answer.invocation_ids)
