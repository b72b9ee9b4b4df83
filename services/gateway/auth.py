"""Resolving API keys to principals, with a short cache in front of the metadata service.

Positive answers are cached for `ttl` seconds and negative ones for `negative_ttl`, so a hot
build costs one lookup per key per interval, and a revoked key stops working within `ttl`.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from services.common.auth import Capability, Principal, check_key_format, hash_key, redact
from services.common.errors import Unauthenticated, internal
from services.gateway import metrics
from services.gateway.front import CallContext
from services.gen.bbapi.internal.v1 import metadata_pb2, metadata_pb2_grpc

MAX_CACHED = 10_000

# Why a well-formed key is refused: it names no key, or the key was revoked. Only the holder of
# the key sees which, so saying "revoked" tells nobody anything about other tenants' keys.
INVALID, REVOKED = "Invalid API key {}", "API key {} was revoked"
Answer = Principal | str  # a principal, or INVALID / REVOKED (filled in with the redacted key)


class KeyResolver:
    def __init__(self, channel: grpc.aio.Channel, ttl: float = 30.0, negative_ttl: float = 5.0) -> None:
        self.stub = metadata_pb2_grpc.MetadataStub(channel)
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._cache: dict[str, tuple[float, Answer]] = {}
        self._inflight: dict[str, asyncio.Future[Answer]] = {}

    async def resolve(self, key: str) -> Principal:
        """The key's principal, or UNAUTHENTICATED for malformed, unknown and revoked keys."""
        key = check_key_format(key)
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        answer = cached[1] if cached is not None and cached[0] > now else await self._lookup(digest)
        if isinstance(answer, str):
            metrics.AUTH_FAILURES.inc()
            raise Unauthenticated(answer.format(redact(key)))
        return answer

    async def _lookup(self, digest: str) -> Answer:
        """One call per key at a time, however many requests wait for it."""
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            response = await internal(self.stub.ResolveApiKey(metadata_pb2.ResolveApiKeyRequest(key_hash=digest)))
            answer: Answer = (Principal(response.tenant, Capability(response.capability), response.key_id)
                              if response.found else REVOKED if response.revoked else INVALID)
            self._remember(digest, answer, self.negative_ttl if isinstance(answer, str) else self.ttl)
            future.set_result(answer)
            return answer
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # mark retrieved: waiters, if any, re-raise it
            raise
        finally:
            del self._inflight[digest]

    def _remember(self, digest: str, answer: Answer, ttl: float) -> None:
        now = time.monotonic()
        if len(self._cache) >= MAX_CACHED:  # random bad keys must not grow memory without bound
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
        self._cache[digest] = (now + ttl, answer)

    async def authenticate(self, ctx: CallContext) -> None:
        """Front hook: attach the caller's principal when a key was sent (BES may send it later)."""
        key = ctx.api_key()
        if key:
            ctx.principal = await self.resolve(key)
