"""`GET /file/download?bytestream_url=URI[&filename=NAME]`: a file by plain link, as BuildBuddy's
pages link them, for browsers, `curl -O -J`, `curl -C -` and `wget -c`.

The key comes from the `x-buildbuddy-api-key` (or `authorization`) header only: a key in a URL
ends up in access logs, browser history and Referer headers, so `?api_key=` is refused with 400.
The file is read through the same code as GetFile (services.gateway.files), tenant-scoped: another
tenant's blob is 404 like a missing one.

An uncompressed CAS blob (`.../blobs/<hash>/<size>`) is served with a strong ETag (its hash),
If-None-Match (304) and one byte range (206, or 416 past the end; If-Range honoured), the range
read from the blob's offset on disk. A zstd URI (`compressed-blobs/zstd`) streams a zstd frame
whose bytes are not fixed across releases, and an action-result URI the current result: both
answer 200 with `Accept-Ranges: none` and no ETag; resume a download from the `blobs/` URI.
"""

from __future__ import annotations

import time

import grpc
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from services.blobstore.access import BlobAccess
from services.common.auth import Capability
from services.common.errors import ApiError, InvalidArgument
from services.common.resources import Compressor
from services.gateway import files, metrics
from services.gateway.disposition import content_disposition, safe_name
from services.gateway.files import FileRef
from services.gateway.front import API_KEY_HEADER, Authenticate
from services.gateway.http import error_response
from services.gateway.http_api import call_context
from services.gateway.http_ranges import ByteRange, Unsatisfiable, none_match, parse_range, range_applies
from services.gateway.openapi import download_operation

PATH = "/file/download"
METRIC_NAME = "FileDownload"  # the `method` label of bbapi_gateway_http_seconds


def add_route(app: FastAPI, blobs: BlobAccess, authenticate: Authenticate) -> None:
    async def download(request: Request) -> Response:
        start = time.perf_counter()
        try:
            file, name = await _target(request, authenticate)
            response = await _answer(blobs, file, name, request)
        except ApiError as err:
            response = error_response(err.code, err.message)
        except Unsatisfiable as err:
            response = error_response(grpc.StatusCode.OUT_OF_RANGE, str(err), 416,
                                      {"content-range": err.content_range})
        metrics.HTTP_LATENCY.labels(METRIC_NAME, str(response.status_code)).observe(time.perf_counter() - start)
        return response

    app.add_api_route(PATH, download, methods=["GET"], name=METRIC_NAME, summary="Download a file by link",
                      tags=["downloads"], openapi_extra=download_operation())
    app.add_api_route(PATH, download, methods=["HEAD"], include_in_schema=False)


async def _target(request: Request, authenticate: Authenticate) -> tuple[FileRef, str]:
    """The file asked for (authorised, in the caller's tenant) and the name to save it under."""
    query = request.query_params
    if "api_key" in query:
        raise InvalidArgument(f"api_key in the URL is refused: URLs end up in logs, browser history and Referer "
                              f"headers; send the key in the {API_KEY_HEADER} header "
                              f"(curl -H '{API_KEY_HEADER}: KEY', wget --header '{API_KEY_HEADER}: KEY')")
    ctx = call_context(request)
    await authenticate(ctx)
    principal = ctx.require(Capability.READ)
    uri = query.get("bytestream_url", "")
    if not uri:
        raise InvalidArgument("bytestream_url is required: the file's bytestream:// URI")
    file = files.resolve(principal, uri)
    name = safe_name(query.get("filename", "")) or _default_name(file)
    return file, name


def _default_name(file: FileRef) -> str:
    return file.digest.hash + (".zst" if file.compressor is Compressor.ZSTD else "")


async def _answer(blobs: BlobAccess, file: FileRef, name: str, request: Request) -> Response:
    headers = {"content-disposition": content_disposition(name), "x-content-type-options": "nosniff",
               "cache-control": "private"}
    media = "application/zstd" if file.compressor is Compressor.ZSTD else "application/octet-stream"
    size = file.size
    if size is None:  # a zstd stream or an action result: whole, never ranged
        headers["accept-ranges"] = "none"
        return await _send(blobs, file, None, request, 200, headers, media)
    etag = f'"{file.digest.hash}"'
    headers.update({"accept-ranges": "bytes", "etag": etag})
    if none_match(request.headers.get("if-none-match"), etag):
        await files.check_stored(blobs, file)
        return Response(status_code=304, headers=headers)
    try:
        wanted = parse_range(request.headers.get("range"), size) if range_applies(
            request.headers.get("if-range"), etag) else None
    except Unsatisfiable:
        await files.check_stored(blobs, file)  # a missing blob is 404 whatever the range
        raise
    if wanted is None:
        headers["content-length"] = str(size)
        return await _send(blobs, file, None, request, 200, headers, media)
    headers.update({"content-length": str(wanted.length), "content-range": wanted.content_range()})
    return await _send(blobs, file, wanted, request, 206, headers, media)


async def _send(blobs: BlobAccess, file: FileRef, wanted: ByteRange | None, request: Request, status: int,
                headers: dict[str, str], media: str) -> Response:
    if request.method == "HEAD":
        await files.check_stored(blobs, file)
        return Response(status_code=status, headers=headers, media_type=media)
    offset, limit = (0, 0) if wanted is None else (wanted.start, wanted.length)
    body = await files.started(files.read(blobs, file, offset, limit))
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media)

