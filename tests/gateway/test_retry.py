"""Internal calls retried through an outage: only "unreachable" is retried, and only for the budget."""

from __future__ import annotations

import grpc
import pytest

from services.common.errors import ApiError, InvalidArgument, Unavailable
from services.gateway.retry import retrying


class Flaky:
    """A call that fails with `error` the first `failures` times, then answers."""

    def __init__(self, error: ApiError, failures: int) -> None:
        self.error, self.failures, self.calls = error, failures, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "answer"


async def test_an_unreachable_service_is_retried_until_it_answers() -> None:
    call = Flaky(Unavailable("connection refused"), failures=3)
    assert await retrying("metadata", 60, call) == "answer"
    assert call.calls == 4


async def test_an_answer_from_the_service_is_never_retried() -> None:
    call = Flaky(InvalidArgument("bad event"), failures=1)
    with pytest.raises(InvalidArgument):
        await retrying("metadata", 60, call)
    assert call.calls == 1


async def test_an_outage_longer_than_the_budget_fails_with_its_own_status() -> None:
    call = Flaky(Unavailable("connection refused"), failures=10**6)
    with pytest.raises(ApiError) as failed:
        await retrying("metadata", 0.3, call)
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE and 1 < call.calls < 10**6
