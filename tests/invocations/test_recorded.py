"""Real Bazel runs (fixtures/): what the API answers after ingesting them matches what Bazel printed."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from services.common.db import Sessions
from services.gen.api.v1 import action_pb2, common_pb2, invocation_pb2, target_pb2
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations import ids, queries
from services.metadata.invocations.ingest import InvocationStore
from services.metadata.models import Base, InvocationEvent
from tests.invocations.support import FAKE_KEY, Printed, ingest, invocation_id_of, recorded

Status = common_pb2.Status


async def load(maker: Sessions, name: str, secrets: tuple[str, ...] = (FAKE_KEY,)) -> str:
    events = recorded(name)
    await ingest(InvocationStore(maker), "acme", events, invocation_id_of(events), secrets=secrets)
    return invocation_id_of(events)


async def invocation(maker: Sessions, invocation_id: str) -> invocation_pb2.Invocation:
    answer = await queries.get_invocations(maker, "acme", invocation_pb2.GetInvocationRequest(
        selector=invocation_pb2.InvocationSelector(invocation_id=invocation_id), include_metadata=True,
        include_artifacts=True))
    assert len(answer.invocation) == 1
    return answer.invocation[0]


async def targets(maker: Sessions, invocation_id: str) -> dict[str, target_pb2.Target]:
    answer = await queries.get_targets(maker, "acme", target_pb2.GetTargetRequest(
        selector=target_pb2.TargetSelector(invocation_id=invocation_id)))
    return {t.label: t for t in answer.target}


async def actions(maker: Sessions, invocation_id: str) -> list[action_pb2.Action]:
    answer = await queries.get_actions(maker, "acme", action_pb2.GetActionRequest(
        selector=action_pb2.ActionSelector(invocation_id=invocation_id)))
    return list(answer.action)


async def test_bazel_test_with_metadata_and_workspace_status(maker: Sessions) -> None:
    printed = Printed.of("test_ci")
    invocation_id = await load(maker, "test_ci")
    row = await invocation(maker, invocation_id)
    assert (row.command, row.pattern, row.success, row.bazel_exit_code) == ("test", "//...", False, "TESTS_FAILED")
    assert row.invocationStatus == invocation_pb2.COMPLETE_INVOCATION_STATUS
    assert (row.duration_usec, row.action_count) == (printed.elapsed_usec, printed.processes)
    # BuildMetadata beats WorkspaceStatus beats the client environment (CI=true, USER, GIT_BRANCH, GITHUB_SHA).
    assert row.commit_sha == "2" * 40 and row.role == "CI"
    assert (row.user, row.host, row.branch_name) == ("fixture-user", "fixture-host", "feature/fixtures")
    assert row.repo_url == "https://github.com/acme/widgets"
    assert [(m.key, m.value) for m in row.build_metadata] == [
        ("AA_FIRST", "a"), ("COMMIT_SHA", "2" * 40), ("PARENT_INVOCATION_ID", ""), ("ROLE", "CI"), ("ZZ_LAST", "z")]
    assert [m.key for m in row.workspace_status] == ["BUILD_EMBED_LABEL", "BUILD_HOST", "BUILD_TIMESTAMP",
                                                     "BUILD_USER", "COMMIT_SHA", "GIT_BRANCH", "REPO_URL"]
    assert {a.name for a in row.artifacts} >= {"big.bin", "greeting.txt", "combined.txt", "passing_test"}
    assert all(a.hash and a.size_bytes and "<REDACTED>" not in a.uri for a in row.artifacts)

    found = await targets(maker, invocation_id)
    assert len(found) == printed.targets
    for label, status in printed.test_status.items():
        assert Status.Name(found[label].status) == status
        assert found[label].timing.duration.ToMicroseconds() > 0 and found[label].language == "sh"
    assert found["//:big"].status == Status.BUILT and not found["//:big"].HasField("timing")
    assert (found["//:big"].rule_type, found["//:big"].language) == ("genrule", "")
    assert list(found["//:failing_test"].tag) == ["expected-failure", "smoke"]
    assert found["//:greeting"].id.target_id == ids.encode("//:greeting")

    by_key = {(a.target_label, ids.decode(a.id.action_id)): a for a in await actions(maker, invocation_id)}
    assert {key for label, key in by_key if label == "//:sharded_test"} == {
        "build", "test-S_1-R_1-A_1", "test-S_2-R_1-A_1", "test-S_3-R_1-A_1"}
    shard = by_key["//:sharded_test", "test-S_2-R_1-A_1"]
    assert (shard.shard, shard.run, shard.attempt) == (2, 1, 1)
    assert [f.name for f in shard.file] == ["test.log", "test.xml"]
    assert all(len(f.hash) == 64 and f.size_bytes > 0 and f.uri.endswith(f"/{f.hash}/{f.size_bytes}")
               for f in shard.file)
    # The build action's files are its output groups' named sets, resolved.
    big = by_key["//:big", "build"]
    assert [(f.name, f.size_bytes) for f in big.file] == [("big.bin", 3108894)]
    assert by_key["//:big", "build"].id.target_id == ids.encode("//:big")


async def test_plain_build_has_local_files_without_digests(maker: Sessions) -> None:
    printed = Printed.of("build_plain")
    invocation_id = await load(maker, "build_plain", secrets=())
    row = await invocation(maker, invocation_id)
    assert (row.success, row.bazel_exit_code, row.command) == (True, "SUCCESS", "build")
    assert (row.duration_usec, row.action_count) == (printed.elapsed_usec, printed.processes)
    assert row.commit_sha == "" and row.role == "" and row.user and row.host
    found = await targets(maker, invocation_id)
    assert len(found) == printed.targets and {t.status for t in found.values()} == {Status.BUILT}
    files = [f for a in await actions(maker, invocation_id) for f in a.file]
    assert files and all(f.uri.startswith("file://") and not f.hash and not f.size_bytes for f in files)


async def test_failed_build_and_a_key_given_as_url_userinfo(maker: Sessions) -> None:
    printed = Printed.of("build_failed")
    invocation_id = await load(maker, "build_failed", secrets=())  # the patterns alone must find the key
    row = await invocation(maker, invocation_id)
    assert (row.success, row.bazel_exit_code, row.action_count) == (False, "BUILD_FAILURE", printed.processes)
    found = await targets(maker, invocation_id)
    assert len(found) == printed.targets
    assert [label for label, t in found.items() if t.status == Status.FAILED_TO_BUILD] == printed.failed_to_build
    broken = [a for a in await actions(maker, invocation_id) if a.target_label == "//broken:broken"]
    assert len(broken) == 1, "a failed TargetComplete is no action; the failed ActionExecuted is"
    assert [f.name for f in broken[0].file] == ["stderr"]
    assert broken[0].file[0].uri.startswith("bytestream://<REDACTED>@") and broken[0].file[0].size_bytes > 0
    await assert_nowhere(maker, FAKE_KEY)


@pytest.mark.parametrize("secrets", [(FAKE_KEY,), ()])
async def test_the_key_is_stored_nowhere(maker: Sessions, secrets: tuple[str, ...]) -> None:
    await load(maker, "test_ci", secrets)
    await assert_nowhere(maker, FAKE_KEY)
    async with maker() as session:
        started = bes.BuildEvent.FromString(await session.scalar(
            select(InvocationEvent.payload).where(InvocationEvent.sequence == 1)) or b"")
    assert "x-buildbuddy-api-key=<REDACTED>" in started.started.options_description


async def assert_nowhere(maker: Sessions, secret: str) -> None:
    """Not in any column of any table, raw events included (bytes compared as bytes)."""
    async with maker() as session:
        for table in Base.metadata.sorted_tables:
            for row in await session.execute(text(f"SELECT * FROM {table.name}")):
                for value in row:
                    data = value if isinstance(value, bytes) else str(value).encode()
                    assert secret.encode() not in data, f"{secret} stored in {table.name}"
