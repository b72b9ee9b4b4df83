"""The metadata service's internal gRPC API."""

from __future__ import annotations

from typing import Any

from services.gen.bbapi.internal.v1 import metadata_pb2
from services.metadata import keys
from services.metadata.keys import Sessions


class MetadataServicer:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def ResolveApiKey(self, request: metadata_pb2.ResolveApiKeyRequest,
                            context: Any) -> metadata_pb2.ResolveApiKeyResponse:
        principal = await keys.resolve(self.sessions, request.key_hash)
        if principal is None:
            return metadata_pb2.ResolveApiKeyResponse(found=False)
        return metadata_pb2.ResolveApiKeyResponse(found=True, tenant=principal.tenant,
                                                  capability=int(principal.capability), key_id=principal.key_id)
