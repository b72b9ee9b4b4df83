"""What the `bbapi` command line says when something is wrong: one line, a documented exit code."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from services.cli import exits
from services.cluster.supervisor import free_port
from tests.support.servers import ServeProcess, bbapi

ROOT = Path(__file__).resolve().parent.parent


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    running = ServeProcess(tmp_path_factory.mktemp("serve"), ["--log-level", "warning"]).start()
    yield running
    assert running.stop() == 0


@pytest.mark.parametrize("make", [False, True], ids=["missing", "empty"])
def test_keys_without_a_data_directory_say_how_to_make_one(tmp_path: Path, make: bool) -> None:
    data_dir = tmp_path / "bbapi-data"
    if make:
        data_dir.mkdir()
    for args in (["list"], ["create", "--tenant", "acme"], ["revoke", "AK0123"]):
        line = one_line(bbapi("keys", *args, "--data-dir", str(data_dir)), exits.NO_INPUT)
        assert line == (f"error: no bbapi data directory at {data_dir} (no metadata.db); `bbapi serve --data-dir "
                        f"{data_dir}` creates one, or give the server's --data-dir or --database")
    # no database (nor directory) made up there
    assert (list(data_dir.iterdir()) == []) if make else not data_dir.exists()


def test_keys_against_a_database_that_is_down_name_it_without_its_password() -> None:
    port = free_port()
    line = one_line(bbapi("keys", "list", "--database", f"postgresql://postgres:s3cret@127.0.0.1:{port}/test"),
                    exits.UNAVAILABLE)
    assert line.startswith(f"error: cannot use the database postgresql://postgres:***@127.0.0.1:{port}/test: ")


def test_api_against_a_server_that_is_down_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = one_line(bbapi("api", "GetInvocation", "--server", url, "--api-key", "A" * 20), exits.UNAVAILABLE)
    assert line.startswith(f"error: cannot reach bbapi at {url}: ") and "--server" in line


def test_a_revoked_key_says_revoked_and_an_unknown_one_invalid(server: ServeProcess) -> None:
    key = server.new_key("acme", "read")
    listed = bbapi("keys", "list", "--tenant", "acme", "--data-dir", str(server.data_dir))
    key_id = listed.stdout.splitlines()[1].split()[0]
    assert bbapi("keys", "revoke", key_id, "--data-dir", str(server.data_dir)).returncode == exits.OK
    url = f"http://127.0.0.1:{server.http_port}"
    request = ["api", "GetInvocation", "--server", url, "--json", '{"selector": {"invocation_id": "x"}}']
    revoked = one_line(bbapi(*request, "--api-key", key), exits.FAILED)
    assert revoked == f"error: HTTP 401: API key {key[0]}***{key[-1]} was revoked"
    unknown = "Z" * 20  # well-formed, never created: nothing is said about whether it exists elsewhere
    assert one_line(bbapi(*request, "--api-key", unknown), exits.FAILED) == "error: HTTP 401: Invalid API key Z***Z"
    assert one_line(bbapi(*request[:-2], "--json", "{nope"), exits.USAGE).startswith("error: --json is not valid JSON")


def test_banner_shows_build_events_and_cache_together(server: ServeProcess) -> None:
    example = next(line for line in server.output if "bazel build" in line)
    target = f"grpc://127.0.0.1:{server.grpc_port}"
    assert f"--bes_backend={target} --remote_cache={target} --remote_header=x-buildbuddy-api-key=" in example


def test_help_shows_defaults_as_typed() -> None:
    help_text = re.sub(r"\s+", " ", bbapi("cluster", "--help").stdout)
    assert "default bbapi-cluster]" in help_text and "PosixPath" not in help_text
    assert "default 'info']" in help_text  # strings stay quoted, so an empty default is visible


def _prereqs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("test_prereqs", ROOT / "scripts" / "test_prereqs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scripts_test_finds_missing_and_mismatched_test_dependencies(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["pytest==0.0.1", "ruff", "sqlalchemy[asyncio]"]\n'
                         '[project.optional-dependencies]\ndev = ["surely-not-installed-here==1.0"]\n'
                         'operator = ["psutil"]\n')
    assert _prereqs().unmet_requirements(pyproject) == ["pytest==0.0.1", "surely-not-installed-here==1.0"]
    assert _prereqs().unmet_requirements() == []  # this environment has everything scripts/test needs
