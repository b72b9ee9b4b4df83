"""One error type for the whole code base, carrying a gRPC status code.

Domain code raises `ApiError` (or a subclass); the gRPC layers turn it into a status, the HTTP
layer into the status code DESIGN.md maps it to, with a JSON body `{code, message}`.
Internal gRPC errors are turned back into `ApiError` so a NOT_FOUND from a CAS shard stays a
NOT_FOUND at the edge.
"""

from __future__ import annotations

from collections.abc import Awaitable
from http import HTTPStatus
from typing import TypeVar

import grpc

T = TypeVar("T")


class ApiError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}: {self.message})"


class InvalidArgument(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unimplemented(ApiError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class OutOfRange(ApiError):
    code = grpc.StatusCode.OUT_OF_RANGE


class DataLoss(ApiError):
    code = grpc.StatusCode.DATA_LOSS


class Internal(ApiError):
    code = grpc.StatusCode.INTERNAL


_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.CANCELLED: 499,  # client closed request (nginx convention)
    grpc.StatusCode.OK: HTTPStatus.OK,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.ABORTED: HTTPStatus.CONFLICT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
}


def http_status(code: grpc.StatusCode) -> int:
    """HTTP status for a gRPC code (DESIGN.md: 400/401/403/404/409/413/429/500/503...)."""
    return int(_HTTP.get(code, HTTPStatus.INTERNAL_SERVER_ERROR))


# The other way, for errors the HTTP layer raises before any handler runs. 405 and 413 have no
# gRPC code of their own: like grpc-gateway, a method not allowed is UNIMPLEMENTED, and a body
# over the limit is RESOURCE_EXHAUSTED, the code gRPC gives a message over its size limit.
_GRPC = {status: code for code, status in _HTTP.items() if code not in (
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED)}
_GRPC[HTTPStatus.METHOD_NOT_ALLOWED] = grpc.StatusCode.UNIMPLEMENTED
_GRPC[HTTPStatus.REQUEST_ENTITY_TOO_LARGE] = grpc.StatusCode.RESOURCE_EXHAUSTED


def grpc_code(status: int) -> grpc.StatusCode:
    """The gRPC code an HTTP error status stands for (any other 4xx: INVALID_ARGUMENT, 5xx: INTERNAL)."""
    fallback = grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL
    return _GRPC.get(status, fallback)


def from_rpc_error(err: grpc.RpcError) -> ApiError:
    """Re-raise an internal call's failure with the same code and message."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return Unavailable(details or "backend unavailable", code)
    return ApiError(details or code.name, code)


async def internal(call: Awaitable[T]) -> T:
    """Await a call to an internal service; its failure is re-raised as the same ApiError."""
    try:
        return await call
    except grpc.RpcError as err:
        raise from_rpc_error(err) from None
