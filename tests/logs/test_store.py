"""Build logs: ordered appends, sealing at UTF-8 boundaries, head-first paging and the live tail."""

from __future__ import annotations

import pytest

from services.common.db import Sessions
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.gen.api.v1 import log_pb2
from services.logs import store as log_store
from services.logs.store import LogStore, decode_token, encode_token, utf8_cut

INV = "6a0d2f64-8a55-4e0b-9c3c-3f4e2a9a1b10"


@pytest.fixture
def store(maker: Sessions) -> LogStore:
    return LogStore(maker)


def request(invocation: str, token: str = "") -> log_pb2.GetLogRequest:
    return log_pb2.GetLogRequest(selector=log_pb2.LogSelector(invocation_id=invocation), page_token=token)


async def read_all(store: LogStore, tenant: str, invocation: str, token: str = "") -> tuple[str, str]:
    """Follow next_page_token until it stops changing or empties; returns (text, last token)."""
    text = []
    while True:
        page = await store.get_log(tenant, request(invocation, token))
        text.append(page.log.contents)
        if not page.next_page_token or page.next_page_token == token:
            return "".join(text), page.next_page_token
        token = page.next_page_token


async def test_appends_page_head_first_and_follow_the_live_tail(store: LogStore,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_store, "CHUNK_BYTES", 100)
    writer = await store.open("acme", INV)
    assert writer.last_sequence == 0
    lines = [f"line {i:03d} ✓ ünïcode\n".encode() for i in range(30)]
    await writer.append([(1, lines[0]), (2, b""), (3, lines[1])])
    text, token = await read_all(store, "acme", INV)
    assert text == (lines[0] + lines[1]).decode()
    assert token  # running build: a token to poll the tail
    await writer.append([(4 + i, line) for i, line in enumerate(lines[2:20])])
    more, token = await read_all(store, "acme", INV, token)
    assert text + more == b"".join(lines[:20]).decode()  # nothing twice, nothing lost
    await writer.append([(22 + i, line) for i, line in enumerate(lines[20:])])
    await writer.finish()
    rest, last = await read_all(store, "acme", INV, token)
    assert text + more + rest == b"".join(lines).decode()
    assert last == ""
    whole, _ = await read_all(store, "acme", INV)
    assert whole == b"".join(lines).decode()
    first = await store.get_log("acme", request(INV))
    assert len(first.log.contents.encode()) <= 100
    assert (await store.get_log("acme", request(INV, "0000"))).log.contents == first.log.contents


async def test_retries_gaps_tenants_and_bad_tokens(store: LogStore) -> None:
    writer = await store.open("acme", INV)
    await writer.append([(1, b"a"), (2, b"b")])
    resumed = await store.open("acme", INV)
    assert resumed.last_sequence == 2
    assert await resumed.append([(1, b"a"), (2, b"b"), (3, b"c")]) == 3
    with pytest.raises(FailedPrecondition):
        await resumed.append([(5, b"e")])
    with pytest.raises(FailedPrecondition):
        await resumed.append([(4, b"d"), (6, b"f")])
    assert (await store.get_log("acme", request(INV))).log.contents == "abc"
    with pytest.raises(NotFound):
        await store.get_log("globex", request(INV))
    with pytest.raises(InvalidArgument):
        await store.get_log("acme", request(""))
    with pytest.raises(InvalidArgument):
        await store.get_log("acme", request(INV, "not-a-token"))


async def test_tokens_are_bound_to_the_invocation_and_a_position_it_has(store: LogStore,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_store, "CHUNK_BYTES", 4)
    writer = await store.open("acme", INV)
    await writer.append([(1, b"0123456789")])  # two sealed chunks and a tail of 2 bytes
    other = "00000000-0000-4000-8000-000000000002"
    await (await store.open("acme", other)).append([(1, b"abc")])
    first = await store.get_log("acme", request(INV))
    assert first.log.contents == "0123"
    with pytest.raises(InvalidArgument, match="another invocation"):
        await store.get_log("acme", request(other, first.next_page_token))
    assert (await store.get_log("acme", request(INV, encode_token(INV, 1, 2)))).log.contents == "67"
    assert (await store.get_log("acme", request(INV, encode_token(INV, 2, 1)))).log.contents == "9"
    for past in (encode_token(INV, 3, 0), encode_token(INV, 1, 5), encode_token(INV, 2, 3), "0009"):
        with pytest.raises(InvalidArgument, match="past the end"):
            await store.get_log("acme", request(INV, past))
    await writer.finish()
    with pytest.raises(InvalidArgument, match="past the end"):  # the tail is sealed now: chunks 0-2 only
        await store.get_log("acme", request(INV, encode_token(INV, 3, 1)))


def test_utf8_cut_and_tokens() -> None:
    data = "aé€😀".encode()
    for limit in range(len(data) + 1):
        cut = utf8_cut(data, limit)
        data[:cut].decode()  # never splits a character
        assert cut <= limit or cut == 0
    assert decode_token(encode_token(INV, 7, 1234), INV) == (7, 1234)
    assert decode_token("00ff", INV) == (255, 0)
