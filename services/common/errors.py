"""One error type for the whole code base, carrying a gRPC status code.

Domain code raises `ApiError` (or a subclass); the gRPC layers turn it into a status, the HTTP
layer into the status code DESIGN.md maps it to, with a JSON body `{code, message}`.
Internal gRPC errors are turned back into the class of their code (`from_rpc_error`), so a
NOT_FOUND from a CAS shard is a `NotFound` at the edge, exactly as if the store were in process.
"""

from __future__ import annotations

from collections.abc import Awaitable
from http import HTTPStatus
from typing import TypeVar

import grpc

T = TypeVar("T")


class ApiError(Exception):
    """A failure with a gRPC status code. Each code has exactly one subclass (`error_class`), so a
    caller catches the class whatever channel the error crossed."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}: {self.message})"


class Unknown(ApiError):
    code = grpc.StatusCode.UNKNOWN


class Cancelled(ApiError):
    code = grpc.StatusCode.CANCELLED


class InvalidArgument(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(ApiError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(ApiError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(ApiError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ApiError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(ApiError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


_CLASSES: dict[grpc.StatusCode, type[ApiError]] = {
    cls.code: cls for cls in (Unknown, Cancelled, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                              PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
                              Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)}
_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def error_class(code: grpc.StatusCode) -> type[ApiError]:
    """The one class of a non-OK code (UNKNOWN's for anything unexpected)."""
    return _CLASSES.get(code, Unknown)


def error_for(code: grpc.StatusCode | int, message: str) -> ApiError:
    """The error of a status received from another process: a code object or its wire number."""
    if isinstance(code, int):
        code = _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    return error_class(code)(message or code.name)


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
    """An internal call's failure as the error class of its code, with its message."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return error_for(code, details)


async def internal(call: Awaitable[T]) -> T:
    """Await a call to an internal service; its failure is re-raised as the same ApiError."""
    try:
        return await call
    except grpc.RpcError as err:
        raise from_rpc_error(err) from None
