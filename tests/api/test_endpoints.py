"""Every documented endpoint on recorded Bazel data: tenant isolation, paging, the `bbapi api` CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from services.common.auth import Capability
from services.logs.store import encode_token
from tests.support.clients import CacheClient, digest
from tests.support.servers import Http, StackServer, bbapi


def test_each_endpoint_reads_another_tenants_data_as_missing(server: StackServer, http: Http, invocation_id: str,
                                                            make_key: Callable[..., str]) -> None:
    mine, theirs = server.admin_key, make_key("other-tenant", Capability.ADMIN)
    selector = {"selector": {"invocation_id": invocation_id}}
    assert http("GetInvocation", selector, mine).json()["invocation"]
    assert http("GetInvocation", selector, theirs).json() == {}
    for method in ("GetTarget", "GetAction", "GetLog"):
        assert http(method, selector, mine).status_code == 200, method
        other = http(method, selector, theirs)
        assert other.status_code == 404 and other.json()["code"] == 5, method
    unknown = {"selector": {"invocation_id": str(uuid.uuid4())}}
    assert http("GetTarget", unknown, mine).status_code == 404


def test_targets_and_actions_page_to_the_end_with_both_id_forms(server: StackServer, http: Http,
                                                                invocation_id: str) -> None:
    key = server.admin_key
    targets = http("GetTarget", {"selector": {"invocation_id": invocation_id}}, key).json()["target"]
    label = "//:sharded_test"
    encoded = next(t["id"]["targetId"] for t in targets if t["label"] == label)
    assert base64.urlsafe_b64decode(encoded + "==").decode() == f"id::v1::{label}"
    for target_id in (encoded, label):
        found = http("GetTarget", {"selector": {"invocation_id": invocation_id, "target_id": target_id}},
                     key).json()["target"]
        assert [t["label"] for t in found] == [label]
    actions = http("GetAction", {"selector": {"invocation_id": invocation_id, "target_label": label}},
                   key).json()["action"]
    shard_ids = sorted(a["id"]["actionId"] for a in actions if "shard" in a)
    assert [base64.urlsafe_b64decode(i + "==").decode() for i in shard_ids] == [
        f"id::v1::test-S_{s}-R_1-A_1" for s in (1, 2, 3)]
    one = http("GetAction", {"selector": {"invocation_id": invocation_id, "action_id": shard_ids[1]}},
               key).json()["action"]
    assert [a["id"]["actionId"] for a in one] == [shard_ids[1]]


def test_bbapi_api_cli(server: StackServer, invocation_id: str, client: CacheClient, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return bbapi("api", *args, "--server", server.http_url, env={"BBAPI_API_KEY": server.admin_key})

    answer = cli("GetInvocation", "--json", json.dumps({"selector": {"invocationId": invocation_id}}))
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["invocation"][0]["id"]["invocationId"] == invocation_id
    data = os.urandom(2_500_000)
    client.upload(data)
    d = digest(data)
    out = tmp_path / "blob.bin"
    fetched = cli("GetFile", "--json", json.dumps({"uri": f"bytestream://x/blobs/{d.hash}/{d.size_bytes}"}),
                  "--output", str(out))
    assert fetched.returncode == 0, fetched.stderr
    assert out.read_bytes() == data
    failed = cli("GetTarget", "--json", "{}")
    assert failed.returncode == 1 and "HTTP 400" in failed.stderr
    assert cli("GetLog", "--json", "{not json").returncode == 2


def test_every_method_reads_any_uuid_spelling_and_echoes_the_canonical_one(http: Http, invocation_id: str) -> None:
    hex_form = invocation_id.replace("-", "")
    for spelling in (invocation_id.upper(), hex_form, "{" + invocation_id + "}", f"urn:uuid:{hex_form.upper()}"):
        selector = {"selector": {"invocation_id": spelling}}
        [invocation] = http("GetInvocation", selector).json()["invocation"]
        assert invocation["id"]["invocationId"] == invocation_id, spelling
        targets = http("GetTarget", selector).json()["target"]
        assert targets and {t["id"]["invocationId"] for t in targets} == {invocation_id}, spelling
        actions = http("GetAction", selector).json()["action"]
        assert actions and {a["id"]["invocationId"] for a in actions} == {invocation_id}, spelling
        log = http("GetLog", selector)
        assert log.status_code == 200 and log.json()["log"]["id"]["invocationId"] == invocation_id, spelling
    assert http("GetLog", {"selector": {"invocation_id": "not-a-uuid"}}).status_code == 404


def test_get_log_tokens_are_bound_to_invocation_and_position(http: Http, invocation_id: str) -> None:
    selector = {"invocation_id": invocation_id}
    assert http("GetLog", {"selector": selector, "page_token": encode_token(invocation_id, 0, 0)}).status_code == 200
    for crafted in (encode_token(str(uuid.uuid4()), 0, 0), encode_token(invocation_id, 7, 0), "0009"):
        answer = http("GetLog", {"selector": selector, "page_token": crafted})
        assert (answer.status_code, answer.json()["code"]) == (400, 3), crafted
