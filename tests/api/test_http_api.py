"""The public API's transports: JSON and protobuf over HTTP, gRPC, errors, files, audit."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable

import grpc
import httpx
import pytest
import zstandard
from google.protobuf import text_format

from services.common.auth import Capability
from services.gen.api.v1 import audit_log_pb2, file_pb2, invocation_pb2, workflow_pb2
from services.gen.api.v1 import service_pb2_grpc as api_grpc
from services.gen.auditlog import auditlog_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from tests.support.clients import CacheClient, digest
from tests.support.servers import Http, StackServer


def uri(data: bytes, instance: str = "ci/linux", compressed: bool = False, ac: bool = False) -> str:
    d = digest(data)
    kind = "compressed-blobs/zstd" if compressed else "blobs"
    return f"bytestream://cache.example.com:443/{instance}/{kind}/{'ac/' if ac else ''}{d.hash}/{d.size_bytes}"


def test_get_file_streams_raw_bytes_with_length_and_zstd(client: CacheClient, http: Http) -> None:
    data = os.urandom(3 * 1024 * 1024)
    client.upload(data, instance="ci/linux")
    response = http("GetFile", {"uri": uri(data)})
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-length"] == str(len(data))
    zstd = http("GetFile", {"uri": uri(data, compressed=True)})
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zstd.content) == data
    missing = http("GetFile", {"uri": uri(b"never uploaded")})
    assert missing.status_code == 404 and missing.json()["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    for bad in ("https://x/blobs/abc/1", "bytestream://host/blobs/nothex/1", "", "bytestream:///blobs/a/1"):
        response = http("GetFile", {"uri": bad})
        assert response.status_code == 400, bad
        assert response.json()["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_file_range(client: CacheClient, http: Http) -> None:
    data = bytes(range(256)) * 100
    client.upload(data, instance="ci/linux")
    got = http("GetFileRange", {"uri": uri(data), "start": "10", "end": 300})
    assert got.status_code == 200
    import base64
    assert base64.b64decode(got.json()["data"]) == data[10:300]
    assert http("GetFileRange", {"uri": uri(data), "start": 500, "end": 10}).status_code == 400
    past_the_end = http("GetFileRange", {"uri": uri(data), "start": len(data) - 5, "end": 10**12})
    assert base64.b64decode(past_the_end.json()["data"]) == data[-5:]  # clamped, not refused as too large
    for empty in ((100, 100), (len(data), len(data))):
        got = http("GetFileRange", {"uri": uri(data), "start": empty[0], "end": empty[1]})
        assert got.status_code == 200 and got.json() == {}, empty  # no bytes, not the rest of the blob
    beyond = http("GetFileRange", {"uri": uri(data), "start": len(data) + 10, "end": len(data) + 20})
    assert beyond.status_code == 200 and beyond.json() == {}  # what is there of the range: nothing
    absent = http("GetFileRange", {"uri": uri(b"never stored"), "start": 3, "end": 3})
    assert absent.status_code == 404


def test_delete_file_cas_and_ac_forms_needs_cache_write_and_is_audited(
        client: CacheClient, http: Http, server: StackServer, make_key: Callable[..., str]) -> None:
    blob = os.urandom(500)
    client.upload(blob, instance="ci/linux")
    reader = make_key("default-readers", Capability.READ)
    denied = http("DeleteFile", {"uri": uri(blob)}, key=reader)
    assert denied.status_code == 403 and denied.json()["code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert http("DeleteFile", {"uri": uri(blob)}).json() == {}
    assert client.missing(blob, instance="ci/linux") == [digest(blob).hash]
    assert http("DeleteFile", {"uri": uri(blob)}).status_code == 200  # absent: still fine
    action = digest(b"an action " + os.urandom(4))
    client.ac.UpdateActionResult(re_pb2.UpdateActionResultRequest(
        instance_name="ci/linux", action_digest=action, action_result=re_pb2.ActionResult(exit_code=3)),
        metadata=client.metadata)
    ac_uri = f"ci/linux/blobs/ac/{action.hash}/{action.size_bytes}"
    assert http("DeleteFile", {"uri": ac_uri}).status_code == 200
    with pytest.raises(grpc.RpcError):
        client.ac.GetActionResult(re_pb2.GetActionResultRequest(instance_name="ci/linux", action_digest=action),
                                  metadata=client.metadata)
    assert http("DeleteFile", {"uri": f"non-valid-blob-type/{action.hash}/{action.size_bytes}"}).status_code == 400
    audit = http("GetAuditLog", {"pageSize": 2})
    assert audit.status_code == 200
    page = audit.json()
    assert len(page["entry"]) == 2 and page["nextPageToken"]
    assert page["entry"][0]["action"] == "DELETE"
    assert "ac:ci/linux/" in page["entry"][0]["resource"]["id"]
    rest = http("GetAuditLog", {"pageToken": page["nextPageToken"]}).json()
    assert len(rest["entry"]) >= 1
    assert http("GetAuditLog", {}, key=reader).status_code == 403


def test_protobuf_bodies_and_answers(client: CacheClient, server: StackServer) -> None:
    data = os.urandom(100)
    client.upload(data, instance="ci/linux")
    body = file_pb2.GetFileRangeRequest(uri=uri(data), start=0, end=50).SerializeToString()
    response = httpx.post(f"{server.http_url}/api/v1/GetFileRange", content=body,
                          headers={"x-buildbuddy-api-key": server.admin_key, "content-type": "application/protobuf"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/protobuf")
    assert file_pb2.GetFileRangeResponse.FromString(response.content).data == data[:50]


def test_text_format_bodies_and_answers(client: CacheClient, server: StackServer) -> None:
    data = os.urandom(100)
    client.upload(data, instance="ci/linux")
    body = text_format.MessageToString(file_pb2.GetFileRangeRequest(uri=uri(data), start=10, end=20))
    headers = {"x-buildbuddy-api-key": server.admin_key, "content-type": "application/protobuf-text"}
    response = httpx.post(f"{server.http_url}/api/v1/GetFileRange", content=body, headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/protobuf-text")
    assert text_format.Parse(response.text, file_pb2.GetFileRangeResponse()).data == data[10:20]
    bad = httpx.post(f"{server.http_url}/api/v1/GetFileRange", content="uri: [", headers=headers)
    assert bad.status_code == 400 and "GetFileRangeRequest" in bad.json()["message"]


def test_errors_map_to_http_statuses(http: Http, server: StackServer) -> None:
    def status(response: httpx.Response) -> tuple[int, int]:
        return response.status_code, response.json()["code"]

    assert status(http("GetInvocation", {"selector": {}})) == (400, 3)
    assert status(http("GetInvocation", {"selector": {"invocation_id": "x"}}, key="A" * 20)) == (401, 16)
    no_key = httpx.post(f"{server.http_url}/api/v1/GetInvocation", json={"selector": {"invocation_id": "x"}})
    assert status(no_key) == (401, 16)
    assert status(http("GetInvocation", {"selector": {"unknown_field": 1}})) == (400, 3)
    assert status(http("GetInvocation", content=b"{not json", headers={"content-type": "application/json"})) == (400, 3)
    assert status(http("GetInvocation", content=b"x", headers={"content-type": "text/plain"})) == (400, 3)
    assert status(http("NoSuchMethod", {})) == (404, 5)
    assert status(http("ExecuteWorkflow", {"repo_url": "https://github.com/x/y"})) == (501, 12)
    assert status(http("Run", {})) == (501, 12)
    huge = http("GetFile", content=b"{" + b" " * (9 * 1024 * 1024) + b"}",
                headers={"content-type": "application/json"})
    assert status(huge) == (413, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    nowhere = httpx.post(f"{server.http_url}/no/such/path", json={})
    assert status(nowhere) == (404, 5) and "/no/such/path" in nowhere.json()["message"]


def test_other_http_methods_get_405_with_allow(server: StackServer) -> None:
    for verb in ("GET", "PUT", "DELETE", "PATCH"):
        response = httpx.request(verb, f"{server.http_url}/api/v1/GetInvocation",
                                 headers={"x-buildbuddy-api-key": server.admin_key})
        assert response.status_code == 405 and response.headers["allow"] == "POST", verb
        assert response.json()["code"] == grpc.StatusCode.UNIMPLEMENTED.value[0]
    unknown = httpx.get(f"{server.http_url}/api/v1/NoSuchMethod")
    assert unknown.status_code == 404 and unknown.json()["code"] == 5
    assert httpx.post(f"{server.http_url}/healthz").status_code == 405


def test_both_authorization_header_forms(server: StackServer) -> None:
    body = {"selector": {"invocation_id": str(uuid.uuid4())}}
    for scheme in ("Bearer", "bearer", "x-buildbuddy-api-key"):
        response = httpx.post(f"{server.http_url}/api/v1/GetInvocation", json=body,
                              headers={"authorization": f"{scheme} {server.admin_key}"})
        assert response.status_code == 200 and response.json() == {}, scheme
    wrong = httpx.post(f"{server.http_url}/api/v1/GetInvocation", json=body,
                       headers={"authorization": f"Bearer {'B' * 20}"})
    assert wrong.status_code == 401
    basic = httpx.post(f"{server.http_url}/api/v1/GetInvocation", json=body,
                       headers={"authorization": f"Basic {server.admin_key}"})
    assert basic.status_code == 401  # not a scheme that carries an API key
    stub = api_grpc.ApiServiceStub(grpc.insecure_channel(server.grpc_target))
    answer = stub.GetInvocation(invocation_pb2.GetInvocationRequest(selector=invocation_pb2.InvocationSelector(
        invocation_id=str(uuid.uuid4()))), metadata=[("authorization", f"Bearer {server.admin_key}")])
    assert list(answer.invocation) == []


def test_upstream_shaped_bodies_of_unimplemented_methods_get_501(http: Http) -> None:
    workflow = {"repo_url": "https://github.com/acme/app", "branch": "main", "commit_sha": "a" * 40,
                "action_names": ["Test"], "visibility": "PUBLIC", "async": True, "env": {"A": "1"},
                "disable_retry": True}
    run = {"repo": "https://github.com/acme/app", "branch": "main", "steps": [{"run": "bazel test //..."}],
           "skip_auto_checkout": True, "wait_until": "STARTED", "patches": ["ZGlmZg=="], "timeout": "15m"}
    for method, body in (("ExecuteWorkflow", workflow), ("Run", run), ("CreateUserApiKey", {"user_id": "US1"})):
        response = http(method, body)
        assert (response.status_code, response.json()["code"]) == (501, 12), (method, response.text)
    assert http("ExecuteWorkflow", {"clean": True}).status_code == 400  # field 4 is retired upstream


def test_get_invocation_accepts_both_spellings_and_answers_proto3_json(http: Http) -> None:
    unknown = str(uuid.uuid4())
    assert http("GetInvocation", {"selector": {"invocation_id": unknown}}).json() == {}
    assert http("GetInvocation", {"selector": {"invocationId": unknown}}).json() == {}
    assert http("GetInvocation", {"selector": {"commitSha": "f" * 40}}).status_code == 200


def test_grpc_api_service_and_its_alias(server: StackServer, client: CacheClient) -> None:
    data = os.urandom(700_000)
    client.upload(data, instance="ci/linux")
    channel = grpc.insecure_channel(server.grpc_target)
    md = [("x-buildbuddy-api-key", server.admin_key)]
    stub = api_grpc.ApiServiceStub(channel)
    got = b"".join(r.data for r in stub.GetFile(file_pb2.GetFileRequest(uri=uri(data)), metadata=md))
    assert got == data
    with pytest.raises(grpc.RpcError) as info:
        list(stub.GetFile(file_pb2.GetFileRequest(uri=uri(b"nope")), metadata=md))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        stub.ExecuteWorkflow(workflow_pb2.ExecuteWorkflowRequest(), metadata=md)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    alias = channel.unary_unary("/buildbuddy.api.v1.ApiService/GetInvocation",
                                request_serializer=invocation_pb2.GetInvocationRequest.SerializeToString,
                                response_deserializer=invocation_pb2.GetInvocationResponse.FromString)
    answer = alias(invocation_pb2.GetInvocationRequest(selector=invocation_pb2.InvocationSelector(
        invocation_id=str(uuid.uuid4()))), metadata=md)
    assert list(answer.invocation) == []
    deleted = os.urandom(300)
    client.upload(deleted, instance="ci/linux")
    stub.DeleteFile(file_pb2.DeleteFileRequest(uri=uri(deleted)), metadata=md)
    audit = stub.GetAuditLog(audit_log_pb2.GetAuditLogRequest(), metadata=md)
    newest = audit.entry[0]
    assert newest.action == auditlog_pb2.Action.DELETE
    assert newest.resource.id.endswith(f"{digest(deleted).hash}/{len(deleted)}"), newest


def test_tenants_cannot_read_each_others_files(client: CacheClient, http: Http,
                                               make_key: Callable[..., str]) -> None:
    data = os.urandom(1000)
    client.upload(data, instance="ci/linux")
    stranger = make_key("strangers")
    assert http("GetFile", {"uri": uri(data)}, key=stranger).status_code == 404
    assert http("GetFileRange", {"uri": uri(data), "end": 10}, key=stranger).status_code == 404
    assert http("DeleteFile", {"uri": uri(data)}, key=stranger).status_code == 200
    assert client.missing(data, instance="ci/linux") == []  # their delete touched their (empty) cache


def test_openapi_document_lists_every_method(server: StackServer) -> None:
    document = httpx.get(f"{server.http_url}/openapi.json").json()
    for method in ("GetInvocation", "GetLog", "GetTarget", "GetAction", "GetFile", "DeleteFile", "GetFileRange"):
        assert f"/api/v1/{method}" in document["paths"], method
    schemas = document["components"]["schemas"]
    invocation = schemas["api.v1.Invocation"]["properties"]
    assert "string" in invocation["durationUsec"]["type"]  # int64 as a string, as proto3 JSON writes it
    assert "COMPLETE_INVOCATION_STATUS" in invocation["invocationStatus"]["enum"]


def test_openapi_states_required_fields_errors_and_the_key(server: StackServer) -> None:
    document = httpx.get(f"{server.http_url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert schemas["api.v1.GetTargetRequest"]["required"] == ["selector"]
    assert schemas["api.v1.TargetSelector"]["required"] == ["invocationId"]
    assert schemas["api.v1.GetFileRequest"]["required"] == ["uri"]
    assert [branch["required"] for branch in schemas["api.v1.InvocationSelector"]["anyOf"]] == [
        ["invocationId"], ["commitSha"]]
    get_log = document["paths"]["/api/v1/GetLog"]["post"]
    assert {"400", "401", "403", "404", "413", "500", "503"} <= set(get_log["responses"])
    assert get_log["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert "501" in document["paths"]["/api/v1/Run"]["post"]["responses"]
    assert "404" not in document["paths"]["/api/v1/Run"]["post"]["responses"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "x-buildbuddy-api-key"}
    assert schemes["Bearer"]["scheme"] == "bearer"
    assert {"ApiKeyHeader": []} in get_log["security"]


def test_docs_page_loads_its_assets_from_bbapi(server: StackServer) -> None:
    page = httpx.get(f"{server.http_url}/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets  # nothing from a CDN
    for asset in assets:
        assert httpx.get(f"{server.http_url}{asset}").status_code == 200, asset
