"""The `bbapi` command line as a user runs it: serve, keys, env vars, signals, crash recovery."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from services.common.settings import env_names
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from tests.support.clients import CacheClient, digest
from tests.support.servers import ServeProcess, bbapi

ROOT = Path(__file__).resolve().parent.parent


def revoked_column(listing: str, key_id: str) -> str:
    """The REVOKED cell of `key_id`'s row in `bbapi keys list` (a fixed-width table)."""
    header, *rows = listing.splitlines()
    start, end = header.index("REVOKED"), header.index("LABEL")
    return next(row[start:end].strip() for row in rows if row.split()[0] == key_id)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A bbapi data directory with its database, as a first `bbapi serve` leaves it."""
    made = bbapi("migrate", "--database", f"sqlite:///{tmp_path / 'metadata.db'}")
    assert made.returncode == 0, made.stderr
    return tmp_path


def test_keys_create_list_revoke(data_dir: Path) -> None:
    created = bbapi("keys", "create", "--tenant", "acme", "--capability", "read", "--label", "ci reader",
                    "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert len(key) == 20 and key.isalnum()
    listed = bbapi("keys", "list", "--data-dir", str(data_dir))
    assert "acme" in listed.stdout and "read" in listed.stdout and "ci reader" in listed.stdout
    assert key not in listed.stdout  # keys are stored hashed and never shown again
    key_id = next(line.split()[0] for line in listed.stdout.splitlines() if "acme" in line)
    assert revoked_column(listed.stdout, key_id) == "-"
    assert bbapi("keys", "revoke", key_id, "--data-dir", str(data_dir)).returncode == 0
    revoked = revoked_column(bbapi("keys", "list", "--data-dir", str(data_dir)).stdout, key_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", revoked), revoked
    bad = bbapi("keys", "create", "--tenant", "Bad Name", "--data-dir", str(data_dir))
    assert bad.returncode == 1 and "invalid tenant name" in bad.stderr
    unknown = bbapi("keys", "revoke", "AKnope", "--data-dir", str(data_dir))
    assert unknown.returncode == 1 and "no API key" in unknown.stderr
    stored = (data_dir / "metadata.db").read_bytes()
    assert key.encode() not in stored


def test_flags_are_env_vars_too(data_dir: Path) -> None:
    created = bbapi("keys", "create", env={"BBAPI_TENANT": "from-env", "BBAPI_DATA_DIR": str(data_dir)})
    assert created.returncode == 0, created.stderr
    assert "from-env" in bbapi("keys", "list", "--data-dir", str(data_dir)).stdout
    help_text = bbapi("serve", "--help").stdout
    for name in ("BBAPI_DATA_DIR", "BBAPI_GRPC_PORT", "BBAPI_HTTP_PORT"):
        assert name in help_text


def test_readme_configuration_reference_is_current() -> None:
    """The README's flag/env table is generated from the settings; a stale one fails here."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "settings_doc.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    readme = (ROOT / "README.md").read_text()
    from services.allinone.settings import ServeSettings
    assert all(name in readme for name in env_names(ServeSettings))
    assert "PydanticUndefined" not in readme and "| (required) |" in readme


def test_serve_prints_the_admin_key_once_and_stops_cleanly(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path).start()
    assert first.admin_key is not None and len(first.admin_key) == 20
    assert httpx.get(f"http://127.0.0.1:{first.http_port}/readyz").json()["ready"]
    client = CacheClient(first.grpc_target, first.admin_key)
    client.upload(b"kept across restarts")
    assert first.stop(signal.SIGTERM) == 0
    second = ServeProcess(tmp_path).start()
    assert second.admin_key is None
    assert not any(first.admin_key in line for line in second.output)
    assert CacheClient(second.grpc_target, first.admin_key).missing(b"kept across restarts") == []
    assert second.stop(signal.SIGINT) == 0


def test_kill_9_during_an_upload_leaves_no_partial_blob(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path).start()
    assert serve.admin_key is not None
    client = CacheClient(serve.grpc_target, serve.admin_key)
    done = os.urandom(300_000)
    client.upload(done)
    data = os.urandom(6 * 1024 * 1024)
    d = digest(data)
    name = f"uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"
    half = threading.Event()

    def slow() -> Iterator[bs_pb2.WriteRequest]:
        for request in client.write_requests(data, name, chunk=128 * 1024):
            if request.write_offset > len(data) // 2:
                half.set()
                time.sleep(60)
            yield request

    future = client.bytestream.Write.future(slow(), metadata=client.metadata)
    assert half.wait(10)
    time.sleep(0.5)
    assert any((tmp_path / "cas" / "tmp").iterdir()), "the upload should be in progress"
    serve.stop(signal.SIGKILL)
    with pytest.raises(grpc.RpcError):
        future.result(timeout=10)
    restarted = ServeProcess(tmp_path).start()
    again = CacheClient(restarted.grpc_target, serve.admin_key)
    assert again.missing(data) == [d.hash]
    assert again.missing(done) == []
    assert again.download(digest(done)) == done
    assert list((tmp_path / "cas" / "tmp").iterdir()) == []
    restarted.stop()
