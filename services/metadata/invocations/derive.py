"""The invocation's fields, derived from its events with the reference's source priorities (§3.3).

As BuildBuddy's parser does: the client environment comes from the `canonical` structured command
line only (Bazel also sends the `original` one); repository URLs are normalised wherever they come
from (https for remote hosts, an `owner/repo` slug is GitHub's); a child names its parent with
build metadata PARENT_RUN_ID (the parent's RUN_ID) or PARENT_INVOCATION_ID.

A field takes a value when the value is non-empty and its source's priority is at least that of the
source which set it last: BuildStarted < client environment < WorkspaceStatus < BuildMetadata <
WorkflowConfigured; within one priority the later value wins. The priorities travel with the row
(`sources`), so another replica can resume a stream and keep deriving correctly.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations.bep import usec
from services.metadata.models import INDEXED

STARTED, ENV, WORKSPACE, METADATA, WORKFLOW = 1, 2, 3, 4, 5

# Client environment variables per field, in the reference's order (a later one wins).
_ENV_FIELDS = {
    "user": ("USER",),
    "repo_url": ("TRAVIS_REPO_SLUG", "GIT_URL", "BUILDKITE_REPO", "REPO_URL", "CIRCLE_REPOSITORY_URL",
                 "GITHUB_REPOSITORY", "CI_REPOSITORY_URL"),
    "branch_name": ("TRAVIS_BRANCH", "GIT_BRANCH", "BUILDKITE_BRANCH", "CIRCLE_BRANCH", "GITHUB_REF",
                    "GITHUB_HEAD_REF", "CI_COMMIT_BRANCH"),
    "commit_sha": ("TRAVIS_COMMIT", "GIT_COMMIT", "BUILDKITE_COMMIT", "CIRCLE_SHA1", "GITHUB_SHA", "COMMIT_SHA",
                   "VOLATILE_GIT_COMMIT", "CI_COMMIT_SHA"),
}
_WORKSPACE_KEYS = {"BUILD_HOST": "host", "HOST": "host", "BUILD_USER": "user", "USER": "user", "ROLE": "role",
                   "REPO_URL": "repo_url", "GIT_BRANCH": "branch_name", "COMMIT_SHA": "commit_sha",
                   "PATTERN": "pattern"}
_METADATA_KEYS = {"HOST": "host", "USER": "user", "ROLE": "role", "REPO_URL": "repo_url", "BRANCH_NAME": "branch_name",
                  "COMMIT_SHA": "commit_sha", "PATTERN": "pattern", "PARENT_INVOCATION_ID": "parent_invocation_id",
                  "RUN_ID": "run_id", "PARENT_RUN_ID": "parent_run_id"}
_CLIPPED = ("command", "pattern", "user", "host", "role", "repo_url", "branch_name", "commit_sha",
            "parent_invocation_id", "run_id", "parent_run_id")  # indexed: a bounded length
_CANONICAL = "canonical"  # the command line with every option Bazel applied (rc files included)
_SLUG = re.compile(r"[\w.-]+/[\w.-]+")  # "owner/repo", as GitHub names repositories
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_PATTERN_DISPLAY = 50
_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$")
_URL = re.compile(r"^(?:ssh|git|git\+ssh|https?)://(?:[^/@]*@)?([^/]+)/(.+)$")


@dataclasses.dataclass
class Fields:
    """The derived columns of an invocation row, plus what deriving needs to continue."""

    command: str = ""
    pattern: str = ""
    user: str = ""
    host: str = ""
    role: str = ""
    repo_url: str = ""
    branch_name: str = ""
    commit_sha: str = ""
    parent_invocation_id: str = ""
    run_id: str = ""
    parent_run_id: str = ""
    success: bool = False
    bazel_exit_code: str = ""
    started_at_usec: int = 0
    duration_usec: int = 0
    action_count: int = 0
    finished: bool = False
    sources: dict[str, int] = dataclasses.field(default_factory=dict)

    def copy(self) -> Fields:
        return dataclasses.replace(self, sources=dict(self.sources))

    def columns(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def changes(self, before: Fields) -> dict[str, Any]:
        """The columns that differ from `before` (most events change none)."""
        old = before.columns()
        return {name: value for name, value in self.columns().items() if value != old[name]}

    @classmethod
    def of(cls, row: Any) -> Fields:
        return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})

    def observe(self, event: bes.BuildEvent, metadata: Iterable[tuple[str, str]] = ()) -> None:
        """Take what `event` says; `metadata` are its BuildMetadata entries (already redacted)."""
        kind = event.WhichOneof("payload")
        if kind == "started":
            self._started(event)
        elif kind == "structured_command_line":
            if event.structured_command_line.command_line_label == _CANONICAL:
                self._environment(_client_env(event.structured_command_line))
        elif kind == "workspace_status":
            for item in event.workspace_status.item:
                self._keyed(_WORKSPACE_KEYS.get(item.key), item.value, WORKSPACE)
        elif kind == "build_metadata":
            for key, value in metadata:
                self._keyed(_METADATA_KEYS.get(key), value, METADATA)
        elif kind == "finished":
            self._finished(event.finished)
        elif kind == "build_metrics":
            self.action_count = event.build_metrics.action_summary.actions_executed
        elif kind == "workflow_configured":
            self._set("command", "workflow run", WORKFLOW)
            self._set("pattern", pattern_display([event.workflow_configured.action_name]), WORKFLOW)

    def _set(self, name: str, value: str, priority: int) -> None:
        if value and priority >= self.sources.get(name, 0):
            setattr(self, name, value[:INDEXED] if name in _CLIPPED else value)
            self.sources[name] = priority

    def _keyed(self, name: str | None, value: str, priority: int) -> None:
        if name == "pattern":
            self._set(name, pattern_display(value.split()), priority)
        elif name == "repo_url":
            self._set(name, normalize_repo_url(value), priority)
        elif name is not None:
            self._set(name, value, priority)

    def _started(self, event: bes.BuildEvent) -> None:
        started = event.started
        self._set("command", started.command, STARTED)
        patterns = [p for child in event.children if child.HasField("pattern") for p in child.pattern.pattern]
        self._set("pattern", pattern_display(patterns), STARTED)
        self.started_at_usec = usec(started.start_time, started.start_time_millis)

    def _environment(self, env: Mapping[str, str]) -> None:
        for name, variables in _ENV_FIELDS.items():
            for variable in variables:
                value = env.get(variable, "")
                if variable == "GITHUB_REF":
                    value = value.removeprefix("refs/heads/") if value.startswith("refs/heads/") else ""
                self._keyed(name, value, ENV)
        for variable, role in (("CI", "CI"), ("CI_RUNNER", "CI_RUNNER")):
            if env.get(variable):
                self._set("role", role, ENV)

    def _finished(self, finished: bes.BuildFinished) -> None:
        self.finished = True
        self.success = finished.exit_code.code == 0
        self.bazel_exit_code = finished.exit_code.name
        end = usec(finished.finish_time, finished.finish_time_millis)
        if self.started_at_usec and end:
            self.duration_usec = max(0, end - self.started_at_usec)


def _client_env(command_line: Any) -> dict[str, str]:
    """`--client_env=NAME=VALUE` options; values containing '=' are dropped, as in the reference."""
    env: dict[str, str] = {}
    for section in command_line.sections:
        for option in section.option_list.option:
            parts = option.option_value.split("=")
            if option.option_name == "client_env" and len(parts) == 2:
                env[parts[0]] = parts[1]
    return env


def pattern_display(patterns: list[str]) -> str:
    """Patterns joined by ", ": the first always, more while the running length (each + 2) stays <= 50."""
    shown: list[str] = []
    length = 0
    for pattern in patterns:
        length += len(pattern) + 2
        if shown and length > _PATTERN_DISPLAY:
            break
        shown.append(pattern)
    more = len(patterns) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def normalize_repo_url(url: str) -> str:
    """SSH, scp-like and HTTP(S) Git URLs as `https://host/path` without credentials or `.git` (http
    stays only for a local host); an `owner/repo` slug as its GitHub URL; anything else as given."""
    url = url.strip()
    if _SLUG.fullmatch(url):
        return f"https://github.com/{url.removesuffix('.git')}"
    match = _URL.match(url) or _SCP_LIKE.match(url)
    if match is None:
        return url
    host, path = match[1], match[2].strip("/").removesuffix(".git")
    local = urlsplit(f"//{host}").hostname in _LOCAL_HOSTS
    scheme = "http" if url.startswith("http://") and local else "https"
    return f"{scheme}://{host}/{path}"
