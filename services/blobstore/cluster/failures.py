"""What a member's failure means for routing: down, or a bad request every replica would refuse."""

from __future__ import annotations

from services.common.errors import Cancelled, DeadlineExceeded, InvalidArgument, OutOfRange, Unavailable


def is_unavailable(err: BaseException) -> bool:
    """The member is unreachable (or too slow), rather than the request being wrong."""
    return isinstance(err, Unavailable | DeadlineExceeded | Cancelled | TimeoutError)


def rejects_input(err: BaseException) -> bool:
    """The request itself is bad (e.g. a hash mismatch): every replica would say the same."""
    return isinstance(err, InvalidArgument | OutOfRange)
