"""The audit log: newest first, keyset pages pinned to the first page's end, tokens bound to their query."""

from __future__ import annotations

import pytest

from services.common.db import Sessions
from services.common.errors import InvalidArgument
from services.gen.api.v1 import audit_log_pb2
from services.gen.bbapi.internal.v1 import metadata_pb2
from services.metadata import audit


async def record(maker: Sessions, tenant: str, resource: str) -> None:
    await audit.record(maker, metadata_pb2.AuditRecord(tenant=tenant, key_id="AK1", action="DeleteFile",
                                                       resource=resource, detail="cas"))


def request(token: str = "", size: int = 2, **selector: int) -> audit_log_pb2.GetAuditLogRequest:
    answer = audit_log_pb2.GetAuditLogRequest(page_size=size, page_token=token)
    for name, usec in selector.items():
        getattr(answer.selector, name).FromMicroseconds(usec)
    return answer


async def test_pages_newest_first_and_later_entries_do_not_shift_them(maker: Sessions) -> None:
    for i in range(5):
        await record(maker, "acme", f"r{i}")
    await record(maker, "globex", "other")
    first = await audit.entries(maker, "acme", request())
    assert [e.resource.id for e in first.entry] == ["r4", "r3"]
    assert first.entry[0].resource.name == "DeleteFile: cas" and first.entry[0].authentication_info.api_key.id == "AK1"
    await record(maker, "acme", "late")  # after the first page: not in this listing
    second = await audit.entries(maker, "acme", request(first.next_page_token))
    third = await audit.entries(maker, "acme", request(second.next_page_token))
    assert [e.resource.id for e in [*second.entry, *third.entry]] == ["r2", "r1", "r0"]
    assert third.next_page_token == ""
    everything = await audit.entries(maker, "acme", request(size=0))
    assert [e.resource.id for e in everything.entry][:2] == ["late", "r4"]


async def test_tokens_belong_to_their_tenant_and_selector(maker: Sessions) -> None:
    for i in range(3):
        await record(maker, "acme", f"r{i}")
    token = (await audit.entries(maker, "acme", request(size=1))).next_page_token
    assert token
    with pytest.raises(InvalidArgument):
        await audit.entries(maker, "globex", request(token, size=1))
    with pytest.raises(InvalidArgument):
        await audit.entries(maker, "acme", request(token, size=1, start_time=1))
    with pytest.raises(InvalidArgument):
        await audit.entries(maker, "acme", request("not-a-token"))
    assert not (await audit.entries(maker, "acme", request(start_time=2, end_time=1))).entry  # an empty window
    assert len((await audit.entries(maker, "acme", request(token, size=1))).entry) == 1
