"""OpenTelemetry: with an exporter configured, a call's trace continues from the gateway into the service
it calls over an internal channel (metadata here; the all-in-one's blob store is in process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc

from services.gen.api.v1 import invocation_pb2
from services.gen.api.v1 import service_pb2_grpc as api_grpc
from tests.support.clients import CacheClient
from tests.support.servers import ServeProcess


def spans(output: str) -> list[dict[str, Any]]:
    """The JSON spans the console exporter printed between other lines."""
    decoder, found, position = json.JSONDecoder(), [], 0
    while (start := output.find("{\n", position)) != -1:
        try:
            span, position = decoder.raw_decode(output, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if isinstance(span, dict) and "context" in span:
            found.append(span)
    return found


def test_gateway_and_service_spans_share_a_trace(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, extra=["--tracing-exporter", "console", "--log-level", "warning"]).start()
    assert serve.admin_key is not None
    with grpc.insecure_channel(serve.grpc_target) as channel:
        api_grpc.ApiServiceStub(channel).GetInvocation(
            invocation_pb2.GetInvocationRequest(selector=invocation_pb2.InvocationSelector(invocation_id="x" * 36)),
            metadata=[("x-buildbuddy-api-key", serve.admin_key)])
    assert serve.stop() == 0
    by_kind = {(span["name"], span["kind"]): span for span in spans("".join(serve.output))}
    edge = by_kind["/api.v1.ApiService/GetInvocation", "SpanKind.SERVER"]
    call = by_kind["/bbapi.internal.v1.Metadata/GetInvocation", "SpanKind.CLIENT"]
    service = by_kind["/bbapi.internal.v1.Metadata/GetInvocation", "SpanKind.SERVER"]
    assert edge["context"]["trace_id"] == call["context"]["trace_id"] == service["context"]["trace_id"]
    assert service["parent_id"] == call["context"]["span_id"]


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path).start()
    assert serve.admin_key is not None
    CacheClient(serve.grpc_target, serve.admin_key).upload(b"no spans for this")
    assert serve.stop() == 0
    assert spans("".join(serve.output)) == []
