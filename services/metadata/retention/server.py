"""The metadata service's internal Retention API, which the logs janitor asks before deleting a log."""

from __future__ import annotations

from typing import Any

from services.common.db import now_usec
from services.common.errors import InvalidArgument
from services.common.retention_source import policies_message
from services.gen.bbapi.internal.v1 import retention_pb2
from services.metadata.retention.expiry import MetadataExpiry


class RetentionServicer:
    def __init__(self, expiry: MetadataExpiry) -> None:
        self.expiry = expiry

    async def GetPolicies(self, request: retention_pb2.GetRetentionPoliciesRequest,
                          context: Any) -> retention_pb2.RetentionPolicies:
        return policies_message(await self.expiry.policies())

    async def Retained(self, request: retention_pb2.RetainedInvocationsRequest,
                       context: Any) -> retention_pb2.RetainedInvocations:
        if not request.tenant:
            raise InvalidArgument("tenant is required")
        kept = await self.expiry.retained(request.tenant, request.invocation_ids, request.now_usec or now_usec())
        return retention_pb2.RetainedInvocations(invocation_ids=sorted(kept))
