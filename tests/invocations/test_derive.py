"""The pure rules: field priorities, display rules, the target status machine, ids, files, page tokens."""

from __future__ import annotations

import pytest

from services.common import invocation_ids
from services.common.errors import InvalidArgument
from services.gen.api.v1 import common_pb2
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.gen.command_line import command_line_pb2
from services.metadata.invocations import ids, paging, targets
from services.metadata.invocations.derive import Fields, normalize_repo_url, pattern_display
from services.metadata.invocations.files import digest_of
from tests.invocations.support import completed, configured

Status = common_pb2.Status
HASH = "0" * 63 + "1"


def environment(label: str = "canonical", **variables: str) -> bes.BuildEvent:
    options = [command_line_pb2.Option(option_name="client_env", option_value=f"{k}={v}")
               for k, v in variables.items()]
    return bes.BuildEvent(structured_command_line=command_line_pb2.CommandLine(command_line_label=label, sections=[
        command_line_pb2.CommandLineSection(option_list=command_line_pb2.OptionList(option=options))]))


def workspace(**items: str) -> bes.BuildEvent:
    return bes.BuildEvent(workspace_status=bes.WorkspaceStatus(
        item=[bes.WorkspaceStatus.Item(key=k, value=v) for k, v in items.items()]))


def test_sources_take_priority_in_order_whatever_the_event_order() -> None:
    fields = Fields()
    fields.observe(bes.BuildEvent(), [("USER", "from-metadata")])  # not a BuildMetadata event: ignored
    fields.observe(bes.BuildEvent(build_metadata=bes.BuildMetadata()), [("USER", "meta"), ("ROLE", "")])
    fields.observe(workspace(BUILD_USER="ws", ROLE="ws-role", HOST="h1", BUILD_HOST="h2"))
    fields.observe(environment(USER="env", CI="1", GIT_BRANCH="env-branch", GITHUB_REF="refs/tags/v1",
                               GITHUB_REPOSITORY="acme/widgets", COMMIT_SHA="c" * 40, CONTAINS="a=b=c"))
    assert (fields.user, fields.role, fields.host) == ("meta", "ws-role", "h2")
    assert (fields.branch_name, fields.repo_url, fields.commit_sha) == (
        "env-branch", "https://github.com/acme/widgets", "c" * 40)
    fields.observe(environment(GITHUB_REF="refs/heads/main", CI_RUNNER="yes"))
    assert (fields.branch_name, fields.role) == ("main", "ws-role")
    fields.observe(environment("original", USER="from-the-original-command-line", GIT_BRANCH="original"))
    assert (fields.user, fields.branch_name) == ("meta", "main")  # only the canonical command line counts
    resumed = Fields.of(fields)  # what a resuming replica reads back from the row
    resumed.observe(workspace(BUILD_USER="late-ws"))
    assert resumed.user == "meta", "WorkspaceStatus never overrides BuildMetadata, even after a resume"


def test_started_finished_and_metrics() -> None:
    fields = Fields()
    fields.observe(bes.BuildEvent(
        started=bes.BuildStarted(command="test", start_time_millis=1_000),
        children=[bes.BuildEventId(pattern=bes.BuildEventId.PatternExpandedId(pattern=["//a/...", "//b:c"]))]))
    fields.observe(bes.BuildEvent(finished=bes.BuildFinished(
        finish_time_millis=3_500, exit_code=bes.BuildFinished.ExitCode(name="SUCCESS", code=0))))
    fields.observe(bes.BuildEvent(build_metrics=bes.BuildMetrics(
        action_summary=bes.BuildMetrics.ActionSummary(actions_executed=7))))
    assert (fields.command, fields.pattern, fields.duration_usec) == ("test", "//a/..., //b:c", 2_500_000)
    assert (fields.success, fields.bazel_exit_code, fields.action_count, fields.finished) == (True, "SUCCESS", 7, True)
    fields.observe(bes.BuildEvent(build_metadata=bes.BuildMetadata()), [("PATTERN", "//x //y")])
    assert fields.pattern == "//x, //y"


def test_pattern_display_and_repo_urls() -> None:
    assert pattern_display([]) == ""
    assert pattern_display(["//" + "a" * 60]) == "//" + "a" * 60
    assert pattern_display([f"//pkg{i}:target" for i in range(10)]) == (
        "//pkg0:target, //pkg1:target, //pkg2:target and 7 more")
    for url in ("git@github.com:acme/widgets.git", "ssh://git@github.com/acme/widgets.git",
                "https://user:token@github.com/acme/widgets/", "https://github.com/acme/widgets"):
        assert normalize_repo_url(url) == "https://github.com/acme/widgets", url
    assert normalize_repo_url("http://git.example/x.git") == "https://git.example/x"  # https for remote hosts
    for local in ("http://localhost:3000/x.git", "http://127.0.0.1/x", "http://[::1]:8080/x"):
        assert normalize_repo_url(local).startswith("http://"), local
    assert normalize_repo_url("acme/widgets") == "https://github.com/acme/widgets"
    assert normalize_repo_url("not a url") == "not a url"


def test_a_slug_is_github_from_any_source() -> None:
    fields = Fields()
    fields.observe(environment(TRAVIS_REPO_SLUG="acme/from-env"))
    assert fields.repo_url == "https://github.com/acme/from-env"
    fields.observe(workspace(REPO_URL="acme/from-status"))
    assert fields.repo_url == "https://github.com/acme/from-status"
    fields.observe(bes.BuildEvent(build_metadata=bes.BuildMetadata()), [("REPO_URL", "acme/from-metadata.git")])
    assert fields.repo_url == "https://github.com/acme/from-metadata"


def summary(label: str, status: int) -> bes.BuildEvent:
    return bes.BuildEvent(id=bes.BuildEventId(test_summary=bes.BuildEventId.TestSummaryId(label=label)),
                          test_summary=bes.TestSummary(overall_status=status, first_start_time_millis=5,  # type: ignore[arg-type]
                                                       total_run_duration_millis=2))


def fold(*events: bes.BuildEvent) -> targets.TargetRow:
    row = None
    for event in events:
        label = targets.target_label(event)
        assert label is not None
        row = targets.apply(row, label, event)
    assert row is not None
    return row


def test_target_status_machine() -> None:
    row = fold(configured("//:t", "sh_test rule", tags=("a",)))
    assert (row.status, row.rule_type, row.language, row.tags) == (Status.BUILDING, "sh_test", "sh", ["a"])
    assert fold(configured("//:t"), completed("//:t")).status == Status.BUILT
    failed_then_built = fold(configured("//:t"), completed("//:t", success=False), completed("//:t"))
    assert failed_then_built.status == Status.FAILED_TO_BUILD
    tested = fold(configured("//:t"), completed("//:t"), summary("//:t", bes.FLAKY), completed("//:t"))
    assert (tested.status, tested.start_usec, tested.duration_usec) == (Status.FLAKY, 5000, 2000)
    assert fold(summary("//:t", bes.TOOL_HALTED_BEFORE_TESTING)).status == Status.CANCELLED
    assert fold(summary("//:t", bes.NO_STATUS)).status == Status.STATUS_UNSPECIFIED


def test_events_for_labels_never_configured_still_make_sense() -> None:
    row = fold(completed("//never:configured", success=False, tags=["late"]))
    assert (row.label, row.status, row.tags) == ("//never:configured", Status.FAILED_TO_BUILD, ["late"])
    aborted = bes.BuildEvent(id=configured("//:x").id, aborted=bes.Aborted(reason=bes.Aborted.SKIPPED))
    assert fold(aborted).status == Status.SKIPPED
    interrupted = bes.BuildEvent(id=completed("//:x").id,
                                 aborted=bes.Aborted(reason=bes.Aborted.USER_INTERRUPTED))
    assert fold(configured("//:x"), interrupted).status == Status.CANCELLED
    assert fold(configured("//:x"), bes.BuildEvent(id=interrupted.id, aborted=bes.Aborted())).status == (
        Status.FAILED_TO_BUILD)
    aspect = bes.BuildEvent(id=bes.BuildEventId(target_configured=bes.BuildEventId.TargetConfiguredId(
        label="//:x", aspect="//:aspect.bzl%a")))
    assert targets.target_label(aspect) is None


def test_ids_and_digests() -> None:
    assert ids.encode("build") == "aWQ6OnYxOjpidWlsZA"
    assert ids.encode("test-S_3-R_1-A_1") == "aWQ6OnYxOjp0ZXN0LVNfMy1SXzEtQV8x"
    assert ids.encode("//tools/replay_action:replay_action_lib") == (
        "aWQ6OnYxOjovL3Rvb2xzL3JlcGxheV9hY3Rpb246cmVwbGF5X2FjdGlvbl9saWI")
    for label in ("//a:b", "@repo//x:y", "//:t"):
        assert ids.decode(ids.encode(label)) == label and ids.decode(label) == label
    assert invocation_ids.canonical("A6E92562-5CE4-4ABC-A258-487BAA456155") == "a6e92562-5ce4-4abc-a258-487baa456155"
    with pytest.raises(InvalidArgument):
        invocation_ids.canonical("not-a-uuid")
    assert digest_of(f"bytestream://h:1/blobs/{HASH}/12") == (HASH, 12)
    assert digest_of(f"bytestream://<REDACTED>@h/my/instance/blobs/{HASH}/3") == (HASH, 3)
    assert digest_of(f"bytestream://h/compressed-blobs/zstd/{HASH}/5") == (HASH, 5)
    assert digest_of(f"bytestream://h/blobs/blake3/{HASH}/7") == (HASH, 7)  # Bazel's --digest_function=blake3
    assert digest_of(f"bytestream://h/i/compressed-blobs/zstd/blake3/{HASH}/8") == (HASH, 8)
    sha1 = "a" * 40
    assert digest_of(f"bytestream://h/blobs/{sha1}/9") == (sha1, 9)
    for uri in (f"file:///tmp/{HASH}/1", "bytestream://h/blobs/xyz/1", "", f"bytestream://h/blobs/{HASH}/-1",
                f"bytestream://h/blobs/md5/{HASH}/1", f"bytestream://h/blobs/ac/{HASH}/1"):
        assert digest_of(uri) == ("", 0), uri


def test_page_tokens_belong_to_their_query() -> None:
    token = paging.encode(("q", "1"), ["//a", 3])
    assert paging.decode(token, ("q", "1"), (str, int)) == ["//a", 3]
    assert paging.decode("", ("q", "1"), (str, int)) is None
    for bad, query in ((token, ("q", "2")), ("!!", ("q", "1")), ("e30", ("q", "1")),
                       (paging.encode(("q", "1"), ["//a"]), ("q", "1")),
                       (paging.encode(("q", "1"), [3, "//a"]), ("q", "1"))):
        with pytest.raises(InvalidArgument):
            paging.decode(bad, query, (str, int))
