"""OpenTelemetry: with an exporter configured, a call's trace continues from the gateway into the shard."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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


def test_gateway_and_shard_spans_share_a_trace(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, extra=["--tracing-exporter", "console", "--log-level", "warning"]).start()
    assert serve.admin_key is not None
    CacheClient(serve.grpc_target, serve.admin_key).upload(os.urandom(300_000))
    assert serve.stop() == 0
    by_kind = {(span["name"], span["kind"]): span for span in spans("".join(serve.output))}
    edge = by_kind["/google.bytestream.ByteStream/Write", "SpanKind.SERVER"]
    call = by_kind["/bbapi.internal.v1.CasShard/Write", "SpanKind.CLIENT"]
    shard = by_kind["/bbapi.internal.v1.CasShard/Write", "SpanKind.SERVER"]
    assert edge["context"]["trace_id"] == call["context"]["trace_id"] == shard["context"]["trace_id"]
    assert shard["parent_id"] == call["context"]["span_id"]


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path).start()
    assert serve.admin_key is not None
    CacheClient(serve.grpc_target, serve.admin_key).upload(b"no spans for this")
    assert serve.stop() == 0
    assert spans("".join(serve.output)) == []
