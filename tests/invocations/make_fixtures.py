"""Regenerate the Build Event Protocol fixtures under fixtures/ with the real Bazel.

    python -m tests.invocations.make_fixtures

Three runs of the e2e workspace: `bazel test //...` with build metadata, a workspace status
command and the remote cache of a throw-away `bbapi serve` (so outputs get bytestream:// URIs and
the options carry an API key to redact); a plain `bazel build //...` (file:// URIs); and a
`--keep_going` build with a broken target added, every action published, and the key given as the
cache URL's userinfo. Each run leaves `<name>.bep` (varint-delimited BuildEvent messages, as Bazel
wrote them) and `<name>.out` (Bazel's console output, which the tests compare the stored data with).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from tests.support.bazel import Workspace
from tests.support.servers import ServeProcess

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAKE_KEY = "FixtureKey0123456789"
WORKSPACE_STATUS = """#!/bin/sh
echo "COMMIT_SHA 1111111111111111111111111111111111111111"
echo "REPO_URL git@github.com:acme/widgets.git"
echo "GIT_BRANCH feature/fixtures"
echo "BUILD_USER fixture-user"
echo "BUILD_HOST fixture-host"
"""
BROKEN_BUILD = """genrule(
    name = "broken",
    outs = ["broken.txt"],
    cmd = "echo 'this genrule fails on purpose' >&2; exit 1",
)
"""
METADATA = {"ROLE": "CI", "COMMIT_SHA": "2222222222222222222222222222222222222222", "PARENT_INVOCATION_ID": "",
            "ZZ_LAST": "z", "AA_FIRST": "a"}


# Bazel reports the client environment; keep it small, and give the CI run what CI systems set.
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
CI_ENV = {"CI": "true", "USER": "env-user", "GIT_BRANCH": "env-branch", "GITHUB_SHA": "3" * 40}


def record(workspace: Workspace, name: str, command: str, *flags: str, env: dict[str, str] | None = None) -> int:
    bep = FIXTURES / f"{name}.bep"
    os.environ.clear()
    os.environ.update({**BASE_ENV, **(env or {})})
    run = workspace.bazel(command, "//...", f"--build_event_binary_file={bep}", *flags)
    (FIXTURES / f"{name}.out").write_text(run.output)
    print(f"{name}: bazel {command} exited {run.returncode}, {bep.stat().st_size} bytes of events")
    return run.returncode


def main() -> int:
    FIXTURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        serve = ServeProcess(root / "serve", extra=["--bootstrap-api-key", FAKE_KEY]).start()
        workspace = Workspace.create(root / "ws", root / "bazel-root")
        status = root / "status.sh"
        status.write_text(WORKSPACE_STATUS)
        status.chmod(0o755)
        try:
            record(workspace, "test_ci", "test",
                   *(f"--build_metadata={key}={value}" for key, value in METADATA.items()),
                   f"--workspace_status_command={status}",
                   f"--remote_cache=grpc://{serve.grpc_target}",
                   f"--remote_header=x-buildbuddy-api-key={FAKE_KEY}", env=CI_ENV)
            workspace.bazel("clean")
            record(workspace, "build_plain", "build")
            (workspace.root / "broken").mkdir()
            (workspace.root / "broken" / "BUILD").write_text(BROKEN_BUILD)
            record(workspace, "build_failed", "build", "--keep_going", "--build_event_publish_all_actions",
                   f"--remote_cache=grpc://{FAKE_KEY}@{serve.grpc_target}")
        finally:
            workspace.shutdown()
            serve.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
