"""What a member's failure means for routing: down, missing, or a bad request.

Errors from a shard arrive as ApiError carrying the shard's status code (services.common.errors
.from_rpc_error), so these look at the code, not the subclass.
"""

from __future__ import annotations

import grpc

from services.common.errors import ApiError, Unavailable


def is_unavailable(err: BaseException) -> bool:
    """The member is unreachable (or too slow), rather than the request being wrong."""
    return isinstance(err, Unavailable | TimeoutError)


def is_not_found(err: BaseException) -> bool:
    return isinstance(err, ApiError) and err.code == grpc.StatusCode.NOT_FOUND


def rejects_input(err: BaseException) -> bool:
    """The request itself is bad (e.g. a hash mismatch): every replica would say the same."""
    return isinstance(err, ApiError) and err.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE)
