"""A real Bazel talks to `bbapi serve --tls-cert/--tls-key` over grpcs://, trusting a local CA:
remote cache and Build Event Service both, read back over HTTPS.

Debian's bazel-bootstrap cannot speak TLS at all: it is built against Debian's Netty, whose JDK
provider has ALPN removed, so any grpcs:// target crashes it ("JDK provider does not support
ALPN protocol"). This test therefore runs the official Bazel build, which bundles its own TLS
stack, from npm: `npm install --prefix /opt/bazel-tls @bazel/bazel-linux_x64@2.1.0` (.ci/run
does it), or wherever BBAPI_TLS_BAZEL points. Bazel 2.1 takes the API key as userinfo of the
target on every call, as Bazel 4 does on BES.
"""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.bazel import Workspace
from tests.support.servers import ServeProcess
from tests.support.tls import Authority

pytestmark = pytest.mark.bazel
TLS_BAZEL = os.environ.get("BBAPI_TLS_BAZEL", "/opt/bazel-tls/node_modules/.bin/bazel")


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, authority: Authority) -> Iterator[ServeProcess]:
    cert, key = authority.directory / "tls.crt", authority.directory / "tls.key"
    authority.issue("bbapi", cert, key)
    process = ServeProcess(tmp_path_factory.mktemp("serve-data"),
                           extra=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    yield process
    process.stop()


@pytest.fixture
def tls_workspace(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    assert Path(TLS_BAZEL).exists(), f"{TLS_BAZEL} missing: see this module's docstring"
    ws = Workspace.create(tmp_path / "ws", tmp_path_factory.getbasetemp() / "tls-bazel-root", TLS_BAZEL)
    yield ws
    ws.shutdown()


def test_bazel_uses_grpcs_for_cache_and_build_events(serve: ServeProcess, tls_workspace: Workspace,
                                                      authority: Authority) -> None:
    assert any("grpcs://" in line for line in serve.output), serve.output
    key = serve.new_key("secure-team")
    target = f"grpcs://{key}@localhost:{serve.grpc_port}"
    invocation = str(uuid.uuid4())
    flags = [f"--remote_cache={target}", f"--bes_backend={target}", f"--tls_certificate={authority.ca_file}"]
    first = tls_workspace.bazel("build", "//...", f"--invocation_id={invocation}", *flags)
    assert first.returncode == 0, first.output
    assert "WARNING: Remote Cache" not in first.output and "ERROR" not in first.output, first.output

    assert tls_workspace.bazel("clean").returncode == 0
    second = tls_workspace.bazel("build", "//...", *flags)
    assert second.returncode == 0, second.output
    hits = second.processes()
    assert hits.get("remote cache hit", 0) >= 3 and set(hits) <= {"remote cache hit", "internal"}, hits

    trusting = ssl.create_default_context(cafile=str(authority.ca_file))
    response = httpx.post(f"https://localhost:{serve.http_port}/api/v1/GetInvocation", verify=trusting,
                          headers={"x-buildbuddy-api-key": key}, timeout=30,
                          json={"selector": {"invocation_id": invocation}})
    assert response.status_code == 200, response.text
    (found,) = response.json()["invocation"]
    assert found["id"]["invocationId"] == invocation and found["success"] is True


def test_bazel_refuses_a_server_it_does_not_trust(serve: ServeProcess, tls_workspace: Workspace) -> None:
    key = serve.new_key("untrusting-team")
    run = tls_workspace.bazel("build", "//:greeting", f"--remote_cache=grpcs://{key}@localhost:{serve.grpc_port}")
    assert run.returncode != 0 and "remote cache hit" not in run.processes(), run.output
