"""SearchInvocations on SQLite and PostgreSQL: every filter, statuses, time ranges, paging, tenancy."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.db import Sessions
from services.common.errors import InvalidArgument
from services.gen.bbapi.api.v1 import insights_pb2
from services.metadata.insights import search
from tests.insights.support import load

BASE = {"REPO_URL": "git@github.com:acme/widgets.git", "BRANCH_NAME": "main", "COMMIT_SHA": "c1", "USER": "alice",
        "HOST": "ci-1", "ROLE": "CI", "PATTERN": "//app/..."}
# per filter: the build metadata that sets it to another value, and that value as searched for
VARIANTS = {"repo_url": ("REPO_URL", "acme/gadgets", "https://github.com/acme/gadgets"),
            "branch_name": ("BRANCH_NAME", "dev", "dev"), "commit_sha": ("COMMIT_SHA", "c2", "c2"),
            "user": ("USER", "bob", "bob"), "host": ("HOST", "ci-2", "ci-2"), "role": ("ROLE", "LOCAL", "LOCAL"),
            "pattern": ("PATTERN", "//lib/...", "//lib/...")}


async def found(maker: Sessions, tenant: str = "acme", page_size: int = 0, token: str = "",
                **query: object) -> tuple[list[str], str]:
    answer = await search.search_invocations(maker, tenant, insights_pb2.SearchInvocationsRequest(
        query=insights_pb2.InvocationQuery(**query), page_size=page_size, page_token=token))  # type: ignore[arg-type]
    return [i.id.invocation_id for i in answer.invocation], answer.next_page_token


def filtering(column: str, value: str) -> dict[str, Any]:
    return {column: value}


async def test_each_filter_finds_exactly_the_invocations_that_match_it(maker: Sessions) -> None:
    base = await load(maker, meta=BASE)
    other = {column: await load(maker, meta={**BASE, key: value}) for column, (key, value, _) in VARIANTS.items()}
    built = await load(maker, command="build", meta=BASE)
    everything = [built, *reversed(other.values()), base]  # newest first
    assert (await found(maker))[0] == everything
    for column, (_, _, searched) in VARIANTS.items():
        assert (await found(maker, **filtering(column, searched)))[0] == [other[column]], column
        stored = "https://github.com/acme/widgets" if column == "repo_url" else BASE[VARIANTS[column][0]]
        assert (await found(maker, **filtering(column, stored)))[0] == [i for i in everything if i != other[column]]
    assert (await found(maker, command="build"))[0] == [built]
    assert (await found(maker, command="test"))[0] == [i for i in everything if i != built]
    # a repository is found by any spelling of its URL; filters combine (AND)
    for spelling in ("acme/gadgets", "git@github.com:acme/gadgets.git", "https://github.com/acme/gadgets.git"):
        assert (await found(maker, repo_url=spelling))[0] == [other["repo_url"]], spelling
    assert (await found(maker, user="bob", branch_name="main"))[0] == [other["user"]]
    assert (await found(maker, user="bob", branch_name="dev"))[0] == []


async def test_status_is_what_the_ui_shows(maker: Sessions) -> None:
    succeeded = await load(maker)
    failed = await load(maker, code=3)
    running = await load(maker, finish=False)
    disconnected = await load(maker, build_finished=False)
    Status = insights_pb2.OverallStatus
    for status, expected in ((Status.SUCCESS, succeeded), (Status.FAILURE, failed), (Status.IN_PROGRESS, running),
                             (Status.DISCONNECTED, disconnected)):
        assert (await found(maker, status=status))[0] == [expected], Status.Name(status)
    with pytest.raises(InvalidArgument):
        await found(maker, status=99)


async def test_a_time_range_keeps_the_invocations_created_in_it(maker: Sessions) -> None:
    first, second, third = [await load(maker) for _ in range(3)]
    answer = await search.search_invocations(maker, "acme", insights_pb2.SearchInvocationsRequest())
    created = {i.id.invocation_id: i.created_at_usec for i in answer.invocation}

    def window(start: int | None = None, end: int | None = None) -> insights_pb2.TimeRange:
        bounds = insights_pb2.TimeRange()
        if start is not None:
            bounds.start_time.FromMicroseconds(start)
        if end is not None:
            bounds.end_time.FromMicroseconds(end)
        return bounds

    assert (await found(maker, created=window(created[second])))[0] == [third, second]  # start inclusive
    assert (await found(maker, created=window(end=created[second])))[0] == [first]  # end exclusive
    assert (await found(maker, created=window(created[second], created[third])))[0] == [second]
    assert (await found(maker, created=window(created[third], created[first])))[0] == []  # inverted: nothing


async def test_pages_follow_tokens_to_the_end_under_a_server_cap(maker: Sessions,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    made = [await load(maker, meta={"BRANCH_NAME": "main"}) for _ in range(7)]
    await load(maker, meta={"BRANCH_NAME": "dev"})
    newest_first = list(reversed(made))
    pages, token = [], ""
    while True:
        page, token = await found(maker, page_size=3, token=token, branch_name="main")
        pages.append(page)
        if not token:
            break
    assert pages == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    page, token = await found(maker, page_size=7, branch_name="main")
    assert page == newest_first and token == ""  # an exact last page says it is the end
    monkeypatch.setattr(search, "MAX_PAGE", 4)
    page, token = await found(maker, page_size=1000, branch_name="main")
    assert page == newest_first[:4] and token
    # a token belongs to its query and tenant
    with pytest.raises(InvalidArgument):
        await found(maker, token=token, branch_name="dev")
    with pytest.raises(InvalidArgument):
        await found(maker, "other", token=token, branch_name="main")
    with pytest.raises(InvalidArgument):
        await found(maker, token="not-a-token")
    with pytest.raises(InvalidArgument):
        await found(maker, page_size=-1)


async def test_another_tenants_invocations_are_never_found(maker: Sessions) -> None:
    mine = await load(maker, "acme", meta=BASE)
    theirs = await load(maker, "other", meta=BASE)
    for query in ({}, {"commit_sha": "c1"}, {"user": "alice"}, {"status": insights_pb2.SUCCESS}):
        assert (await found(maker, "acme", **query))[0] == [mine], query
        assert (await found(maker, "other", **query))[0] == [theirs], query
        assert (await found(maker, "nobody", **query))[0] == [], query
