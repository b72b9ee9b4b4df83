"""Invocations made to order for the insight tests, ingested through the real store."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from services.common.db import Sessions
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations.ingest import InvocationStore
from tests.invocations.support import configured, finished, ingest, metadata, numbered, started, summary


async def load(maker: Sessions, tenant: str = "acme", command: str = "test", code: int = 0, finish: bool = True,
               build_finished: bool = True, tests: Sequence[tuple[str, bes.TestStatus.ValueType]] = (),
               meta: Mapping[str, str] | None = None) -> str:
    """One invocation: build metadata `meta`, the given test outcomes, then (unless told not to) BuildFinished
    with `code` and the end of the stream. Returns its id."""
    invocation_id = str(uuid.uuid4())
    events = [started(invocation_id, command), metadata(**(meta or {}))]
    events += [configured(label, "sh_test rule") for label, _ in tests]
    events += [summary(label, status) for label, status in tests]
    if build_finished:
        events.append(finished(code, "SUCCESS" if code == 0 else "TESTS_FAILED"))
    await ingest(InvocationStore(maker), tenant, numbered(events), invocation_id, batch=3, finish=finish)
    return invocation_id
