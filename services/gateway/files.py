"""Files named by the public API's URIs, read for every transport that serves them.

GetFile and GetFileRange (gRPC and `POST /api/v1/...`) and downloads by link
(services.gateway.download) all read here: the URI is scoped to the caller's tenant, a byte
range of an uncompressed blob is passed down as the store's offset and limit (the local store
seeks in the file), and every byte sent counts in `bbapi_gateway_streamed_bytes_total` with
direction `out`, as ByteStream reads do. Hits and misses count in the blob stack
(services.blobstore.metrics), the same for every reader.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.blobstore.access import BlobAccess, Kind, Scope
from services.common.auth import Principal
from services.common.errors import NotFound
from services.common.resources import Compressor, Digest
from services.common.uris import FileUri, parse_file_uri
from services.gateway import metrics


@dataclass(frozen=True, slots=True)
class FileRef:
    """A parsed file URI in the caller's tenant."""

    scope: Scope
    uri: FileUri

    @property
    def digest(self) -> Digest:
        return self.uri.resource.digest

    @property
    def compressor(self) -> Compressor:
        return self.uri.resource.compressor

    @property
    def size(self) -> int | None:
        """The byte length a read of the whole file yields; None when only the read knows (a zstd
        stream, an action result)."""
        if self.uri.kind is Kind.CAS and self.compressor is Compressor.IDENTITY:
            return self.digest.size
        return None


def resolve(principal: Principal, uri: str) -> FileRef:
    """The file `uri` names, in `principal`'s tenant; INVALID_ARGUMENT for a malformed URI."""
    parsed = parse_file_uri(uri)
    return FileRef(Scope(principal.tenant, parsed.resource.instance_name, parsed.resource.function), parsed)


async def read(blobs: BlobAccess, file: FileRef, offset: int = 0, limit: int = 0) -> AsyncIterator[bytes]:
    """The file's bytes from `offset` (`limit` 0: to the end); NotFound before any byte when absent.

    A CAS blob comes in the store's blocks (a zstd frame for compressed-blobs URIs); an action
    result is one piece, its serialized ActionResult.
    """
    counter = metrics.streamed_bytes(file.scope.tenant, "out", file.compressor.name.lower())
    if file.uri.kind is Kind.AC:
        data = await blobs.get_action_result(file.scope, file.digest)
        counter.inc(len(data))
        yield data
        return
    async for block in blobs.read(file.scope, file.digest, offset, limit, file.compressor):
        counter.inc(len(block))
        yield block


async def check_stored(blobs: BlobAccess, file: FileRef) -> None:
    """NotFound unless the file is stored (a use, like a read): for answers that send no bytes."""
    if file.uri.kind is Kind.AC:
        await blobs.get_action_result(file.scope, file.digest)
    elif await blobs.find_missing(file.scope, [file.digest]):
        raise NotFound(f"blob {file.digest} not found")


async def started(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` with its first piece already read, so a missing file or a refusal raises here, before
    an HTTP answer has committed to a status."""
    first = await anext(chunks, None)

    async def rest() -> AsyncIterator[bytes]:
        if first is not None:
            yield first
        async for chunk in chunks:
            yield chunk
    return rest()
