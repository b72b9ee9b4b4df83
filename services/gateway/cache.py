"""REAPI v2 Capabilities, ContentAddressableStorage and ActionCache at the public edge.

Handlers are thin: check the caller's capability, validate names and digests, scope the call to
the caller's tenant and instance, and hand it to the BlobAccess stack.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from itertools import compress, repeat
from typing import Protocol

from google.protobuf.message import DecodeError

from services.blobstore.access import BatchItem, BlobAccess, Scope, read_all
from services.common.auth import Capability
from services.common.convert import compressor_in, compressor_out, digest_in, digest_out, digests_in, status_out
from services.common.errors import InvalidArgument, NotFound, Unimplemented
from services.common.hashing import DigestFunction, function_of
from services.common.resources import SHA256, Compressor, Digest, check_instance_name
from services.gateway import cas_wire, metrics
from services.gateway.front import CallContext
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.build.bazel.semver import semver_pb2

MAX_BATCH_BYTES = 4 * 1024 * 1024
TREE_PAGE = 1000
FUNCTIONS = [re_pb2.DigestFunction.Value.ValueType(f.value) for f in DigestFunction]
ZSTD = re_pb2.Compressor.Value.ZSTD


def scope_for(ctx: CallContext, capability: Capability, instance_name: str,
              function: DigestFunction = SHA256) -> Scope:
    """Authorise the call and scope it to the caller's tenant, the request's instance and its
    digest function (services.common.hashing.function_of reads a request's)."""
    principal = ctx.require(capability)
    return Scope(principal.tenant, check_instance_name(instance_name), function)


class CacheRequest(Protocol):
    """What every REAPI cache request carries (FindMissingBlobs, GetActionResult, ...)."""

    @property
    def instance_name(self) -> str: ...

    @property
    def digest_function(self) -> int: ...


def request_scope(ctx: CallContext, capability: Capability, request: CacheRequest, hashes: Iterable[str]) -> Scope:
    """`scope_for` a request: its digest function, or the one its `hashes` (the first) imply."""
    return scope_for(ctx, capability, request.instance_name, function_of(request.digest_function, hashes))


def _batch_size(total: int) -> int:
    """`total` when a batch of that many bytes is within the advertised limit."""
    if total > MAX_BATCH_BYTES:
        raise InvalidArgument(f"batch of {total} bytes exceeds max_batch_total_size_bytes {MAX_BATCH_BYTES}; "
                              "use ByteStream for large blobs")
    return total


@dataclass
class CapabilitiesServicer:
    async def GetCapabilities(self, request: re_pb2.GetCapabilitiesRequest,
                              ctx: CallContext) -> re_pb2.ServerCapabilities:
        principal = ctx.require(Capability.READ)
        check_instance_name(request.instance_name)
        return re_pb2.ServerCapabilities(
            cache_capabilities=re_pb2.CacheCapabilities(
                digest_functions=FUNCTIONS,
                action_cache_update_capabilities=re_pb2.ActionCacheUpdateCapabilities(
                    update_enabled=principal.capability.includes(Capability.CACHE_WRITE)),
                max_batch_total_size_bytes=MAX_BATCH_BYTES,
                symlink_absolute_path_strategy=re_pb2.SymlinkAbsolutePathStrategy.Value.ALLOWED,
                supported_compressors=[ZSTD],
                supported_batch_update_compressors=[ZSTD],
            ),
            low_api_version=semver_pb2.SemVer(major=2, minor=0),
            high_api_version=semver_pb2.SemVer(major=2, minor=3),
        )


@dataclass
class CasServicer:
    blobs: BlobAccess

    async def FindMissingBlobs(self, request: re_pb2.FindMissingBlobsRequest, ctx: CallContext) -> bytes:
        """Encoded by hand (cas_wire): the answer echoes the request's own Digest messages."""
        messages = list(request.blob_digests)
        scope = request_scope(ctx, Capability.READ, request, (m.hash for m in messages))
        digests = digests_in(messages, scope.function)
        unique = list(dict.fromkeys(digests))
        missing = set(await self.blobs.find_missing(scope, unique))
        ctx.count("cas_digests_checked", len(unique))
        ctx.count("cas_digests_missing", len(missing))
        return cas_wire.find_missing_response(_once_each(messages, digests, missing, len(unique) < len(digests)))

    async def BatchUpdateBlobs(self, request: re_pb2.BatchUpdateBlobsRequest, ctx: CallContext) -> bytes:
        """Encoded by hand (cas_wire), like FindMissingBlobs."""
        requests = list(request.requests)
        messages = [r.digest for r in requests]
        scope = request_scope(ctx, Capability.CAS_WRITE, request, (m.hash for m in messages))
        data = [r.data for r in requests]  # each read of a bytes field is a copy: once
        total = _batch_size(sum(map(len, data)))
        compressors = [r.compressor for r in requests]
        items = list(map(BatchItem, digests_in(messages, scope.function), data,
                         map(compressor_in, compressors) if any(compressors) else repeat(Compressor.IDENTITY)))
        results = await self.blobs.batch_write(scope, items)
        metrics.streamed_bytes(scope.tenant, "in", "batch").inc(total)
        if ctx.request_metadata:
            stored = [len(d) for d, result in zip(data, results, strict=True) if result.error is None]
            ctx.count("cas_uploads", len(stored))
            ctx.count("cas_upload_bytes", sum(stored))
        return cas_wire.batch_update_response(messages, [None if r.error is None else status_out(r.error)
                                                         for r in results])

    async def BatchReadBlobs(self, request: re_pb2.BatchReadBlobsRequest,
                             ctx: CallContext) -> re_pb2.BatchReadBlobsResponse:
        scope = request_scope(ctx, Capability.READ, request, (d.hash for d in request.digests))
        digests = digests_in(request.digests, scope.function)
        _batch_size(sum(d.size for d in digests))
        compressor = Compressor.ZSTD if ZSTD in request.acceptable_compressors else Compressor.IDENTITY
        results = await self.blobs.batch_read(scope, digests, compressor)
        sent = sum(len(r.data) for r in results)
        metrics.streamed_bytes(scope.tenant, "out", "batch").inc(sent)
        if ctx.request_metadata:
            found = sum(r.error is None for r in results)
            ctx.count("cas_downloads", found)
            ctx.count("cas_download_bytes", sent)
            ctx.count("cas_download_misses", sum(isinstance(r.error, NotFound) for r in results))
        return re_pb2.BatchReadBlobsResponse(responses=[
            re_pb2.BatchReadBlobsResponse.Response(
                digest=digest_out(r.digest), data=r.data, status=status_out(r.error),
                compressor=compressor_out(compressor if r.error is None else Compressor.IDENTITY))
            for r in results])

    async def GetTree(self, request: re_pb2.GetTreeRequest, ctx: CallContext) -> AsyncIterator[re_pb2.GetTreeResponse]:
        """Breadth-first from the root; with page_size set, one page and a token (directories sent so far)."""
        scope = request_scope(ctx, Capability.READ, request, [request.root_digest.hash])
        size = request.page_size if request.page_size > 0 else TREE_PAGE
        sent = _decode_token(request.page_token)
        walk = self._walk(scope, digest_in(request.root_digest, scope.function))
        for _ in range(sent):
            if await anext(walk, None) is None:
                break
        page: list[re_pb2.Directory] = []
        async for directory in walk:
            page.append(directory)
            if len(page) < size:
                continue
            following = await anext(walk, None)
            sent += len(page)
            if following is None:
                break
            yield re_pb2.GetTreeResponse(directories=page, next_page_token=_encode_token(sent))
            if request.page_size > 0:
                return
            page = [following]
        yield re_pb2.GetTreeResponse(directories=page)

    async def _walk(self, scope: Scope, root: Digest) -> AsyncIterator[re_pb2.Directory]:
        queue, seen, position = [root], {root}, 0
        while position < len(queue):
            digest = queue[position]
            position += 1
            try:
                directory = re_pb2.Directory.FromString(await read_all(self.blobs, scope, digest))
            except DecodeError:
                raise InvalidArgument(f"blob {digest} is not a Directory message") from None
            except NotFound:
                if digest == root:
                    raise NotFound(f"root directory {digest} not found") from None
                continue  # REAPI allows a partial tree when a subtree is missing
            for child in directory.directories:
                child_digest = digest_in(child.digest, scope.function)
                if child_digest not in seen:
                    seen.add(child_digest)
                    queue.append(child_digest)
            yield directory

    async def SplitBlob(self, request: re_pb2.SplitBlobRequest, ctx: CallContext) -> re_pb2.SplitBlobResponse:
        raise Unimplemented("SplitBlob is not supported (split_blob_support is false)")

    async def SpliceBlob(self, request: re_pb2.SpliceBlobRequest, ctx: CallContext) -> re_pb2.SpliceBlobResponse:
        raise Unimplemented("SpliceBlob is not supported (splice_blob_support is false)")


def _once_each(messages: list[re_pb2.Digest], digests: list[Digest], wanted: set[Digest],
               repeats: bool) -> Iterable[re_pb2.Digest]:
    """The messages naming `wanted` digests, in request order, each digest once however often it was asked."""
    if not repeats:
        return compress(messages, map(wanted.__contains__, digests))
    chosen = []
    for message, digest in zip(messages, digests, strict=True):
        if digest in wanted:
            wanted.discard(digest)
            chosen.append(message)
    return chosen


def _encode_token(count: int) -> str:
    return base64.urlsafe_b64encode(f"tree:{count}".encode()).decode()


def _decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        kind, _, count = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "tree" and count.isdigit():
            return int(count)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidArgument(f"invalid page_token {token!r}")


@dataclass
class ActionCacheServicer:
    blobs: BlobAccess

    async def GetActionResult(self, request: re_pb2.GetActionResultRequest, ctx: CallContext) -> re_pb2.ActionResult:
        scope = request_scope(ctx, Capability.READ, request, [request.action_digest.hash])
        try:
            data = await self.blobs.get_action_result(scope, digest_in(request.action_digest, scope.function))
        except NotFound:
            ctx.count("action_cache_misses")
            raise
        ctx.count("action_cache_hits")
        return re_pb2.ActionResult.FromString(data)

    async def UpdateActionResult(self, request: re_pb2.UpdateActionResultRequest,
                                 ctx: CallContext) -> re_pb2.ActionResult:
        scope = request_scope(ctx, Capability.CACHE_WRITE, request, [request.action_digest.hash])
        action = digest_in(request.action_digest, scope.function)
        result = request.action_result
        for output in result.output_files:
            digest_in(output.digest, scope.function)
        for directory in result.output_directories:
            if directory.HasField("tree_digest"):
                digest_in(directory.tree_digest, scope.function)
        await self.blobs.put_action_result(scope, action, result.SerializeToString())
        ctx.count("action_cache_uploads")
        return result
