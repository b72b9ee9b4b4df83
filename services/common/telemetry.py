"""OpenTelemetry tracing: off by default, exported to stderr/stdout (console) or an OTLP collector.

When enabled, every grpc.aio server and channel of the process gets the OpenTelemetry gRPC
interceptors, so a call's trace context travels from the gateway to the service it calls (W3C
traceparent metadata) and both sides' spans land in one trace. When disabled no interceptor is
installed at all: tracing costs nothing on the streaming paths.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from services.common.errors import InvalidArgument
from services.common.settings import CommonSettings

_enabled = False


def setup_tracing(settings: CommonSettings, service: str, exporter: SpanExporter | None = None) -> bool:
    """Install the process's tracer provider as configured; True when tracing is on."""
    global _enabled
    if exporter is None:
        if settings.tracing_exporter == "none":
            return False
        if settings.tracing_exporter == "console":
            exporter = ConsoleSpanExporter()
        else:
            if not settings.otlp_endpoint:
                raise InvalidArgument("--tracing-exporter=otlp needs --otlp-endpoint (e.g. collector:4317)")
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint, insecure=True)
    provider = TracerProvider(resource=Resource.create({"service.name": f"bbapi-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _enabled = True
    return True


def server_interceptors() -> list[Any]:
    return [aio_server_interceptor()] if _enabled else []  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    return list(aio_client_interceptors()) if _enabled else []  # type: ignore[no-untyped-call]


def tracer() -> trace.Tracer:
    return trace.get_tracer("bbapi")
