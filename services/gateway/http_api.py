"""`POST /api/v1/<Method>`: BuildBuddy's HTTP API, in proto3 JSON or binary protobuf; our own
InsightsService the same way under `POST /api/bbapi/v1/<Method>`.

The body's Content-Type picks the format (none or application/json: JSON; application/protobuf,
application/proto or application/x-protobuf: binary; application/protobuf-text: text format)
and the answer uses the same one. The key comes from the `x-buildbuddy-api-key` or the
`authorization` header (services.gateway.front). Other HTTP methods than POST get 405 with
`Allow: POST`. Errors carry the HTTP status DESIGN.md maps the gRPC code to and a JSON body
`{"code": <grpc code number>, "message": ...}`. GetFile answers with the file's raw bytes,
streamed, with Content-Length when the URI states it (uncompressed CAS blobs; a zstd stream's
length is known only once it is read).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from google.protobuf import json_format, text_format
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from services.common.auth import Capability
from services.common.errors import ApiError, InvalidArgument
from services.common.rpc import message_class
from services.gateway import files, json_strict, metrics
from services.gateway.front import Authenticate, CallContext
from services.gateway.http import error_response
from services.gateway.openapi import (
    ERROR_SCHEMA,
    SECURITY_SCHEMES,
    Schema,
    body_required,
    message_schema,
    responses,
)
from services.gen.api.v1 import file_pb2, service_pb2

MAX_BODY = 8 * 1024 * 1024
PROTOBUF_TYPES = ("application/protobuf", "application/proto", "application/x-protobuf")
TEXT_TYPE = "application/protobuf-text"
SERVICE = service_pb2.DESCRIPTOR.services_by_name["ApiService"]
HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


class _Codec:
    """The request's wire format, used for the answer too."""

    def __init__(self, content_type: str | None) -> None:
        media = (content_type or "").split(";")[0].strip().lower()
        if media in ("", "application/json"):
            self.media = "application/json"
        elif media in PROTOBUF_TYPES:
            self.media = "application/protobuf"
        elif media == TEXT_TYPE:
            self.media = TEXT_TYPE
        else:
            raise InvalidArgument(f"unsupported Content-Type {content_type!r}: use application/json, "
                                  f"application/protobuf or {TEXT_TYPE}")

    def decode(self, body: bytes, cls: type[Message]) -> Message:
        try:
            if self.media == "application/protobuf":
                return cls.FromString(body)
            if self.media == TEXT_TYPE:
                return text_format.Parse(body.decode(), cls())
            document = json.loads(body or b"{}")
            json_strict.check(document, cast(Descriptor, cls.DESCRIPTOR))
            return json_format.ParseDict(document, cls())
        except (json_format.ParseError, text_format.ParseError, DecodeError, UnicodeDecodeError,
                json.JSONDecodeError) as err:
            raise InvalidArgument(f"cannot decode the {cls.DESCRIPTOR.name}: {err}") from None

    def encode(self, message: Message) -> Response:
        if self.media == "application/protobuf":
            return Response(message.SerializeToString(), media_type=self.media)
        if self.media == TEXT_TYPE:
            return Response(text_format.MessageToString(message), media_type=self.media)
        return Response(json_format.MessageToJson(message, indent=None), media_type=self.media)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _TooLarge
    return bytes(body)


class _TooLarge(Exception):
    pass


def call_context(request: Request) -> CallContext:
    """The call as the servicers see it: the request's headers (lower-cased) as metadata."""
    return CallContext({k.lower(): v for k, v in request.headers.items()})


_FORMATS = ("Also takes the same message as binary protobuf (`application/protobuf`) or protobuf text "
            f"(`{TEXT_TYPE}`), answered in the same format.")


@dataclass(frozen=True)
class Routes:
    """A gRPC service served as `POST <prefix>/<Method>`, each method by `servicer`'s attribute of its name."""

    service: ServiceDescriptor
    servicer: object
    prefix: str

    @property
    def tag(self) -> str:
        """The OpenAPI tag: the proto package ("api.v1", "bbapi.api.v1")."""
        return self.service.full_name.rpartition(".")[0]


def add_routes(app: FastAPI, authenticate: Authenticate, served: Sequence[Routes]) -> None:
    """One route per method of every service, documented with schemas derived from the protos."""
    components: dict[str, Schema] = {"Error": ERROR_SCHEMA}
    for routes in served:
        _add_service(app, authenticate, routes, components)

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            schema["components"]["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = schema
        return app.openapi_schema
    app.openapi = openapi  # type: ignore[method-assign]


def _add_service(app: FastAPI, authenticate: Authenticate, routes: Routes, components: dict[str, Schema]) -> None:
    for method in routes.service.methods:
        request_schema = message_schema(method.input_type, components)
        app.add_api_route(
            f"{routes.prefix}/{method.name}", _endpoint(method, routes.servicer, authenticate), methods=["POST"],
            name=method.name, summary=method.name, tags=[routes.tag], description=_FORMATS,
            openapi_extra={
                "requestBody": {"required": body_required(method.input_type),
                                "content": {"application/json": {"schema": request_schema}}},
                "responses": responses(method, components),
                "security": [{scheme: []} for scheme in SECURITY_SCHEMES],  # either one
            })

    names = {method.name for method in routes.service.methods}

    @app.api_route(f"{routes.prefix}/{{method}}", methods=HTTP_METHODS, include_in_schema=False)
    async def other(request: Request, method: str) -> JSONResponse:
        """An unknown method, or a known one called with another HTTP method (POST has its own route)."""
        if method in names:
            return error_response(grpc.StatusCode.UNIMPLEMENTED, f"{method} takes POST, not {request.method}",
                                  405, {"allow": "POST"})
        return error_response(grpc.StatusCode.NOT_FOUND, f"method {method!r} not found")


def _endpoint(method: MethodDescriptor, servicer: object,
              authenticate: Authenticate) -> Callable[[Request], Awaitable[Response]]:
    request_class = message_class(method.input_type)
    impl = getattr(servicer, method.name)

    async def endpoint(request: Request) -> Response:
        start = time.perf_counter()
        try:
            codec = _Codec(request.headers.get("content-type"))
            message = codec.decode(await _body(request), request_class)
            ctx = call_context(request)
            await authenticate(ctx)
            if method.server_streaming:  # GetFile
                response = await _stream_file(impl(message, ctx), message, ctx)  # type: ignore[arg-type]
            else:
                response = codec.encode(await impl(message, ctx))
        except _TooLarge:
            response = error_response(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      f"request body larger than {MAX_BODY} bytes", 413)
        except ApiError as err:
            response = error_response(err.code, err.message)
        metrics.HTTP_LATENCY.labels(method.name, str(response.status_code)).observe(time.perf_counter() - start)
        return response
    return endpoint


async def _stream_file(chunks: AsyncIterator[bytes], request: file_pb2.GetFileRequest, ctx: CallContext) -> Response:
    """Read the first chunk before answering (authorising, parsing and finding the blob), so a
    refusal or a missing blob is an error status and not a broken 200."""
    body = await files.started(chunks)
    size = files.resolve(ctx.require(Capability.READ), request.uri).size
    headers = {"content-length": str(size)} if size is not None else {}
    return StreamingResponse(body, media_type="application/octet-stream", headers=headers)
