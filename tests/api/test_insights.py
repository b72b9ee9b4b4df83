"""InsightsService at the edge on a live stack: HTTP (JSON, protobuf) and gRPC, errors, tenancy, OpenAPI, CLI."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import httpx
import pytest

from services.common.auth import Capability
from services.gen.bbapi.api.v1 import insights_pb2, insights_pb2_grpc
from tests.support.servers import StackServer, bbapi

PREFIX = "/api/bbapi/v1"
SHARDED = "//:sharded_test"


def insight(server: StackServer, method: str, body: object, key: str | None = None) -> httpx.Response:
    return server.api(method, body, key, prefix=PREFIX)


def test_each_method_answers_json_for_the_callers_tenant_only(server: StackServer, invocation_id: str,
                                                             make_key: Callable[..., str]) -> None:
    found = insight(server, "SearchInvocations", {"query": {"command": "test"}})
    assert found.status_code == 200, found.text
    assert invocation_id in [i["id"]["invocationId"] for i in found.json()["invocation"]]
    history = insight(server, "GetTargetHistory", {"label": SHARDED}).json()
    assert [(r["invocationId"], r["status"]) for r in history["run"]] == [(invocation_id, "PASSED")]
    assert insight(server, "GetFlakyTests", {}).status_code == 200
    theirs = make_key("insights-other", Capability.READ)
    assert insight(server, "SearchInvocations", {}, theirs).json() == {}
    assert insight(server, "GetTargetHistory", {"label": SHARDED}, theirs).json() == {}
    assert insight(server, "GetFlakyTests", {}, theirs).json() == {}


def test_protobuf_bodies_and_grpc_give_the_same_answer(server: StackServer, invocation_id: str) -> None:
    request = insights_pb2.GetTargetHistoryRequest(label=SHARDED)
    over_http = server.api("GetTargetHistory", content=request.SerializeToString(), prefix=PREFIX,
                           headers={"content-type": "application/protobuf"})
    assert over_http.headers["content-type"] == "application/protobuf"
    answer = insights_pb2.GetTargetHistoryResponse.FromString(over_http.content)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = insights_pb2_grpc.InsightsServiceStub(channel)
        key = [("x-buildbuddy-api-key", server.admin_key)]
        assert stub.GetTargetHistory(request, metadata=key) == answer
        assert [r.invocation_id for r in answer.run] == [invocation_id]
        with pytest.raises(grpc.RpcError) as refused:
            stub.SearchInvocations(insights_pb2.SearchInvocationsRequest())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as bad:
            stub.GetTargetHistory(insights_pb2.GetTargetHistoryRequest(), metadata=key)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_errors_map_to_http_statuses(server: StackServer) -> None:
    def status(response: httpx.Response) -> tuple[int, int]:
        return response.status_code, response.json()["code"]

    invalid = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status(insight(server, "GetTargetHistory", {})) == (400, invalid)
    assert status(insight(server, "SearchInvocations", {"page_size": -1})) == (400, invalid)
    assert status(insight(server, "SearchInvocations", {"page_token": "nope"})) == (400, invalid)
    for status_value in ("GREEN", False, "3", 1.5, 2**40):  # json_format alone would read these as some status
        assert status(insight(server, "SearchInvocations", {"query": {"status": status_value}})) == (400, invalid)
    assert insight(server, "SearchInvocations", {"query": {"status": 1}}).status_code == 200  # by number: SUCCESS
    not_objects: list[object] = ["", [], "2026-12-01T00:00:00Z"]  # json_format would read "" as an empty TimeRange
    for created in not_objects:
        assert status(insight(server, "GetTargetHistory", {"label": "//:x", "created": created})) == (400, invalid)
    assert status(insight(server, "GetFlakyTests", {"created": {"startTime": "yesterday"}})) == (400, invalid)
    anonymous = httpx.post(f"{server.http_url}{PREFIX}/SearchInvocations", json={})
    assert status(anonymous) == (401, grpc.StatusCode.UNAUTHENTICATED.value[0])
    assert status(insight(server, "NoSuchMethod", {})) == (404, grpc.StatusCode.NOT_FOUND.value[0])
    wrong_verb = httpx.get(f"{server.http_url}{PREFIX}/SearchInvocations")
    assert wrong_verb.status_code == 405 and wrong_verb.headers["allow"] == "POST"


def test_openapi_documents_the_insights_methods(server: StackServer) -> None:
    document = httpx.get(f"{server.http_url}/openapi.json").json()
    for method in ("SearchInvocations", "GetTargetHistory", "GetFlakyTests"):
        operation = document["paths"][f"{PREFIX}/{method}"]["post"]
        assert operation["tags"] == ["bbapi.api.v1"] and {"400", "401", "403"} <= set(operation["responses"])
    schemas = document["components"]["schemas"]
    assert schemas["bbapi.api.v1.GetTargetHistoryRequest"]["required"] == ["label"]
    assert "IN_PROGRESS" in schemas["bbapi.api.v1.InvocationQuery"]["properties"]["status"]["enum"]
    assert schemas["bbapi.api.v1.SearchInvocationsRequest"]["properties"]["pageSize"]["minimum"] == 0
    search = document["paths"][f"{PREFIX}/SearchInvocations"]["post"]["responses"]["200"]
    assert search["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/bbapi.api.v1.SearchInvocationsResponse"}


def test_bbapi_api_cli_calls_insights_methods(server: StackServer, invocation_id: str) -> None:
    answer = bbapi("api", "GetTargetHistory", "--json", json.dumps({"label": SHARDED}), "--server", server.http_url,
                   env={"BBAPI_API_KEY": server.admin_key})
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["run"][0]["invocationId"] == invocation_id
