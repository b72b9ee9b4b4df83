"""A page of insights costs the same for a tenant with 100,000 invocations as for one with 100.

Checked from the database's own plans (SQLite and PostgreSQL, with fresh statistics), not by timing:
every SearchInvocations filter and the target history walk an index in page order, with no sort and
no scan; the flaky-test window reads only the window's test outcomes, through their index.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

from sqlalchemy import Table, insert, text

from services.common.db import Sessions
from services.gen.api.v1 import common_pb2
from services.gen.bbapi.api.v1 import insights_pb2
from services.metadata.insights import flaky, history, search
from services.metadata.models import SEARCHED, Invocation, Target
from tests.invocations.plans import assert_index_walk, plan_of

LARGE, SMALL = 100_000, 100
# Columns of a handful of values spread evenly: a planner may rather walk the newest-first index and skip the
# other values on the way, which costs a page a few times more rows, still without a sort or a scan.
FEW_VALUES = ("role", "command", "overall_status")
LABEL = "//app:test"
_STATUSES = (common_pb2.Status.PASSED, common_pb2.Status.FAILED, common_pb2.Status.FLAKY, common_pb2.Status.BUILT)


def _invocation(tenant: str, i: int) -> dict[str, Any]:
    return {"tenant": tenant, "invocation_id": f"{tenant[:4]}{i:032d}", "key_id": "k", "build_id_hash": "",
            "attempt": 1, "last_sequence": 1, "finished": True, "status": 1 + i % 3, "overall_status": 1 + i % 4,
            "created_at_usec": 1_000_000 * i, "updated_at_usec": 1_000_000 * i, "success": i % 2 == 0,
            "bazel_exit_code": "", "command": ("build", "test")[i % 2], "pattern": f"//p{i % 5}/...",
            "user": f"user{i % 20}", "host": f"host{i % 30}", "role": ("CI", "")[i % 2],
            "repo_url": f"https://github.com/acme/r{i % 10}", "branch_name": f"b{i % 50}", "commit_sha": f"c{i // 10}",
            "parent_invocation_id": "", "run_id": "", "parent_run_id": "", "started_at_usec": 0, "duration_usec": 0,
            "action_count": 0, "sources": {}}


async def _fill(maker: Sessions, tenant: str, count: int) -> None:
    """`count` invocations with a spread of every searched value, each testing LABEL."""
    async with maker.begin() as session:
        for start in range(0, count, 10_000):
            rows = [_invocation(tenant, i) for i in range(start, min(count, start + 10_000))]
            await session.execute(insert(cast(Table, Invocation.__table__)), rows)
        first = await session.scalar(text("SELECT min(id) FROM invocations WHERE tenant = :t"), {"t": tenant})
        for start in range(0, count, 10_000):
            await session.execute(insert(cast(Table, Target.__table__)), [
                {"invocation": first + i, "label": LABEL, "tenant": tenant, "created_at_usec": 1_000_000 * i,
                 "branch_name": f"b{i % 50}", "commit_sha": f"c{i // 10}", "status": _STATUSES[i % 4],
                 "rule_type": "sh_test", "language": "sh", "tags": []}
                for i in range(start, min(count, start + 10_000))])
    async with maker.begin() as session:
        await session.execute(text("ANALYZE"))


def _searches() -> dict[str, insights_pb2.InvocationQuery]:
    sample = _invocation("x", 7)
    queries = {column: insights_pb2.InvocationQuery(**{column if column != "overall_status" else "status":
                                                       sample[column]}) for column in SEARCHED}
    queries["commit_sha"] = insights_pb2.InvocationQuery(commit_sha="c3")
    queries["(none)"] = insights_pb2.InvocationQuery()
    created = insights_pb2.TimeRange()
    created.start_time.FromMicroseconds(5_000_000)
    created.end_time.FromMicroseconds(90_000_000)
    queries["created"] = insights_pb2.InvocationQuery(created=created)
    queries["branch_name, created"] = insights_pb2.InvocationQuery(branch_name="b7", created=created)
    return queries


async def test_every_page_is_an_index_walk_at_any_tenant_size(maker: Sessions) -> None:
    await _fill(maker, "large", LARGE)
    await _fill(maker, "small", SMALL)
    for tenant in ("large", "small"):
        for name, query in _searches().items():
            # the second page too: a token continues the same walk
            first = await search.search_invocations(maker, tenant, insights_pb2.SearchInvocationsRequest(
                query=query, page_size=5))
            for token in ("", first.next_page_token):
                request = insights_pb2.SearchInvocationsRequest(query=query, page_size=5, page_token=token)
                plan = await plan_of(maker, partial(search.search_invocations, maker, tenant, request), "invocations")
                assert_index_walk(plan)
                column = name.split(",")[0]
                if column in SEARCHED and column not in FEW_VALUES:
                    assert f"ix_invocations_by_{column}" in plan, (name, plan)
        for branch in ("", "b7"):
            runs = insights_pb2.GetTargetHistoryRequest(label=LABEL, branch_name=branch, page_size=5)
            plan = await plan_of(maker, partial(history.get_target_history, maker, tenant, runs),
                                 "invocation_targets")
            assert_index_walk(plan)
            assert ("ix_invocation_targets_branch_history" if branch else "ix_invocation_targets_history") in plan


async def test_the_flaky_window_reads_only_its_test_outcomes(maker: Sessions) -> None:
    await _fill(maker, "large", LARGE)
    created = insights_pb2.TimeRange()
    created.start_time.FromMicroseconds(1_000_000 * (LARGE - 1000))
    created.end_time.FromMicroseconds(1_000_000 * LARGE)
    request = insights_pb2.GetFlakyTestsRequest(created=created)
    answer = await flaky.get_flaky_tests(maker, "large", request)
    # the last 1,000 invocations: every FLAKY run, and each commit (10 runs) flipped between PASSED and FAILED
    assert [(t.label, t.invocation_count) for t in answer.flaky_test] == [(LABEL, 750)]
    plan = await plan_of(maker, partial(flaky.get_flaky_tests, maker, "large", request), "invocation_targets")
    assert "ix_invocation_targets_outcomes" in plan, plan
    assert "SCAN invocation_targets" not in plan and "Seq Scan" not in plan, plan
